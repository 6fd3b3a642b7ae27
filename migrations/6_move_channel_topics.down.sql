ALTER TABLE channels ADD COLUMN topic TEXT;
UPDATE channels
   SET topic = (SELECT t.topic FROM channel_topics t WHERE t.channel_id = channels.id);
DROP TABLE channel_topics;
