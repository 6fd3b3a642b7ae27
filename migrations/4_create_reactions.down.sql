DROP INDEX reactions_user;
DROP TABLE reactions;
