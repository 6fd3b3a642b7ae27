CREATE TABLE audit (id serial PRIMARY KEY, user_id bigint REFERENCES users (id) ON DELETE CASCADE, at timestamptz DEFAULT now());
CREATE FUNCTION audit_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit (user_id) VALUES (NEW.id);
  RETURN NEW;
END
$$;
CREATE TRIGGER users_audit AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION audit_user();
ALTER TABLE audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_own ON audit USING (user_id > 0);
