"""The balance check of 0003 fires at commit once per journal entry and sums
the whole transaction each time: a sale of six entries summed it six times
(~9% of PostgreSQL's CPU in a rush). Now the first check of a transaction
notes the highest entry id it covered in a transaction-local setting, and a
later firing for an entry at or below that id has nothing new to check. An
entry inserted after a check (with SET CONSTRAINTS ... IMMEDIATE, say) has a
higher id and is checked again, with every entry there is by then.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION finance_journal_check_balanced() RETURNS trigger AS $$
DECLARE
    marker text := 'finance.balanced_upto_' || NEW.transaction_id;
    checked_upto bigint := NULLIF(current_setting(marker, true), '')::bigint;
    last_id bigint;
    bad_currency text;
    bad_diff bigint;
BEGIN
    IF checked_upto IS NOT NULL AND NEW.id <= checked_upto THEN
        RETURN NULL;
    END IF;
    SELECT max(s.last_id),
           max(CASE WHEN s.diff <> 0 THEN s.currency END),
           max(CASE WHEN s.diff <> 0 THEN s.diff END)
      INTO last_id, bad_currency, bad_diff
      FROM (SELECT currency, max(id) AS last_id,
                   SUM(CASE WHEN side = 'D' THEN amount_cents ELSE -amount_cents END) AS diff
              FROM finance_journalentry
             WHERE transaction_id = NEW.transaction_id
             GROUP BY currency) s;
    IF bad_currency IS NOT NULL THEN
        RAISE EXCEPTION 'journal transaction % does not balance in %: debits - credits = %',
            NEW.transaction_id, bad_currency, bad_diff
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config(marker, last_id::text, true);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

# 0003's function, as it was.
BACKWARD = r"""
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
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [("finance", "0003_ledger_triggers")]

    operations = [migrations.RunPython(_on_postgres(FORWARD), _on_postgres(BACKWARD))]
