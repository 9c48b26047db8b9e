"""Channel adapters: SMS (Twilio), email, webchat; normalize inbound, send outbound."""
