"""Integrations with outside systems (the spec's integration_sources): connections and their encrypted
credentials (`connections`), Meta Marketing API ad-spend import (`meta`), the same data from an Ads Manager CSV
export (`csv_import`), both written through one idempotent upsert into financial_records (`ad_spend`), and
scheduled syncs with their status (`sync`)."""
