DROP SEQUENCE tickets;
DROP INDEX users_name;
