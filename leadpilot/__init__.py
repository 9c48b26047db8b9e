"""LeadPilot: process-level plumbing shared by every layer (settings, embedded infrastructure, CLI)."""
