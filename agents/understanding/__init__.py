"""Language understanding for the lead agent: pure functions over the lead's text, no database, no model
calls, no business words. Each module wraps a well-kept library and is tested on English and Spanish:

- `when`: dates, times and windows ("friday after lunch", "el viernes a las 9", "the 12th", "same time").
- `details`: contact details (name, email, phone in E.164) and explicit quantities ("party of six").
- `signals`: opt-out / opt-in, sentiment, "are you a bot?", urgency.
- `choice`: a reply bound to what was offered ("the second one", "4 works", "yes", "la primera").
- `language`: the lead's language, sticky across short replies.

The business's own words (services, synonyms, custom intents) come from its configuration and are passed in."""
