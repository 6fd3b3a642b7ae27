DROP INDEX messages_channel_created;
DROP TABLE messages;
