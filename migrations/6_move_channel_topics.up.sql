-- Topics move out of channels into their own table, keeping when each was set.
CREATE TABLE channel_topics (
  channel_id INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
  topic      TEXT NOT NULL,
  set_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO channel_topics (channel_id, topic)
  SELECT id, topic FROM channels WHERE topic IS NOT NULL;
ALTER TABLE channels DROP COLUMN topic;
