"""The ledger's rules, enforced by PostgreSQL itself (other databases rely on
the Python checks in finance.services.ledger):

- journal entries and transactions are append-only: UPDATE and DELETE raise;
- every journal transaction balances per currency and has entries, checked
  by DEFERRABLE INITIALLY DEFERRED constraint triggers at commit, so a
  transaction's entries may be inserted one by one (even with raw SQL) but
  can never commit unbalanced.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION finance_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER finance_journalentry_append_only
    BEFORE UPDATE OR DELETE ON finance_journalentry
    FOR EACH ROW EXECUTE FUNCTION finance_ledger_append_only();

CREATE TRIGGER finance_journaltransaction_append_only
    BEFORE UPDATE OR DELETE ON finance_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION finance_ledger_append_only();

CREATE OR REPLACE FUNCTION finance_journal_check_balanced() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT currency, SUM(CASE WHEN side = 'D' THEN amount_cents ELSE -amount_cents END) AS diff
      INTO bad
      FROM finance_journalentry
     WHERE transaction_id = NEW.transaction_id
     GROUP BY currency
    HAVING SUM(CASE WHEN side = 'D' THEN amount_cents ELSE -amount_cents END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal transaction % does not balance in %: debits - credits = %',
            NEW.transaction_id, bad.currency, bad.diff
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER finance_journalentry_balanced
    AFTER INSERT ON finance_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION finance_journal_check_balanced();

CREATE OR REPLACE FUNCTION finance_journal_check_has_entries() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM finance_journalentry WHERE transaction_id = NEW.id) THEN
        RAISE EXCEPTION 'journal transaction % has no entries', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER finance_journaltransaction_has_entries
    AFTER INSERT ON finance_journaltransaction
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION finance_journal_check_has_entries();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS finance_journaltransaction_has_entries ON finance_journaltransaction;
DROP TRIGGER IF EXISTS finance_journalentry_balanced ON finance_journalentry;
DROP TRIGGER IF EXISTS finance_journaltransaction_append_only ON finance_journaltransaction;
DROP TRIGGER IF EXISTS finance_journalentry_append_only ON finance_journalentry;
DROP FUNCTION IF EXISTS finance_journal_check_has_entries();
DROP FUNCTION IF EXISTS finance_journal_check_balanced();
DROP FUNCTION IF EXISTS finance_ledger_append_only();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [("finance", "0002_ledger_settlements_payouts")]

    operations = [migrations.RunPython(_on_postgres(FORWARD), _on_postgres(BACKWARD))]
