-- copied from 2 and not edited: drops the trigger from the wrong table
DROP TRIGGER IF EXISTS touch ON a;
