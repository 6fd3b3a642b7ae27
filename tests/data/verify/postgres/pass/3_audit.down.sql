DROP TRIGGER users_audit ON users;
DROP FUNCTION audit_user();
DROP TABLE audit;
