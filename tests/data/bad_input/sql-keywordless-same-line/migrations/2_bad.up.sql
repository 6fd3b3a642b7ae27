CREATE TABLE a (i int); frobnicate the database;
