-- The kinds of alert destination are the alert channels' own (channels/__init__.py: KINDS), and a
-- destination's kind is checked against them where it is saved (the operator API's body), as its
-- target is. A CHECK here would be a second list to keep in step, and a new kind would need a
-- migration; an unknown kind cannot be saved through the API either way.
ALTER TABLE alert_destinations DROP CONSTRAINT alert_destinations_type_check;
