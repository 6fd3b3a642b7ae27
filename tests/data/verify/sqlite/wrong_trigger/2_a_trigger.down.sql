DROP TRIGGER a_touch;
