DROP TRIGGER users_audit;
DROP TABLE audit;
