DROP TABLE channel_members;
DROP TABLE channels;
