-- Messages posted to a channel; read newest first per channel.
CREATE TABLE messages (
  id         INTEGER PRIMARY KEY,
  channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
  user_id    INTEGER NOT NULL REFERENCES users (id),
  body       TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX messages_channel_created ON messages (channel_id, created_at);
