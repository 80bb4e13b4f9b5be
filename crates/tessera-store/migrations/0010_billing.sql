-- Billing (issue 11, ADR 0005): plans, a price book with per-team overrides, usage priced in
-- the transaction that completes the task, immutable invoices with gap-free numbers, a credit
-- ledger, payment attempts and the payment provider's webhook events. Money is integer minor
-- units of the team's currency; times are epoch milliseconds.
--
-- Invariants held by the schema:
--   * one billing account per team; the only card data anywhere is brand, last four digits and
--     expiry (the provider holds the card), and a card summary is whole or absent
--   * prices are inserted, never updated or deleted (a change is a new row, effective from then)
--   * a usage record's price never changes; it joins an invoice once, and only if priced
--   * one invoice per team and period start; numbers unique and taken from one counter
--   * an invoice that is not `draft` changes only its status (forward) and payment columns;
--     it opens only with lines summing to its subtotal; lines are added only while `draft`
--   * credit entries are never changed; the credit balance is never below zero
--   * payment attempts and provider events are history: never changed

CREATE TABLE billing_accounts (
    team_id TEXT PRIMARY KEY REFERENCES teams (id),
    plan TEXT NOT NULL DEFAULT 'on_demand' CHECK (plan IN ('on_demand', 'enterprise')),
    currency TEXT NOT NULL DEFAULT 'usd' CHECK (length(currency) = 3 AND currency = lower(currency)),
    -- The Admin's monthly cap on accrued live usage (NULL: none).
    spend_limit BIGINT CHECK (spend_limit IS NULL OR spend_limit > 0),
    credit_balance BIGINT NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    -- The accrued amount of the UTC month starting at accrued_month, kept by the completion
    -- transaction so task creation can check the spend limit without summing usage.
    accrued_month BIGINT NOT NULL DEFAULT 0,
    accrued_amount BIGINT NOT NULL DEFAULT 0 CHECK (accrued_amount >= 0),
    -- The spend-limit alert level (0, 80, 100) reached in accrued_month, and the one mailed.
    alert_level BIGINT NOT NULL DEFAULT 0 CHECK (alert_level IN (0, 80, 100)),
    alert_mailed BIGINT NOT NULL DEFAULT 0 CHECK (alert_mailed IN (0, 80, 100)),
    -- The end of the last closed period: the next period starts here (0: at the month the
    -- account was created in).
    closed_until BIGINT NOT NULL DEFAULT 0,
    -- When the period-close job is due for this team; while a worker holds it, its lease end.
    next_close_at BIGINT NOT NULL DEFAULT 0,
    provider_customer_id TEXT,
    card_payment_method_id TEXT,
    card_brand TEXT,
    card_last4 TEXT CHECK (card_last4 IS NULL OR length(card_last4) = 4),
    card_exp_month BIGINT CHECK (card_exp_month IS NULL OR (card_exp_month >= 1 AND card_exp_month <= 12)),
    card_exp_year BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT billing_accounts_card_whole CHECK (
        (card_payment_method_id IS NULL) = (card_brand IS NULL)
        AND (card_brand IS NULL) = (card_last4 IS NULL)
        AND (card_last4 IS NULL) = (card_exp_month IS NULL)
        AND (card_exp_month IS NULL) = (card_exp_year IS NULL)
        AND (card_payment_method_id IS NULL OR provider_customer_id IS NOT NULL)
    )
);
CREATE INDEX billing_accounts_close_due_idx ON billing_accounts (next_close_at);
CREATE INDEX billing_accounts_alert_idx ON billing_accounts (team_id) WHERE alert_level > alert_mailed;
INSERT INTO billing_accounts (team_id, created_at, updated_at)
    SELECT id, created_at, created_at FROM teams;

-- The price of a task type from a date on. The price in effect at a time is the latest row
-- with effective_from at or before it; `*` prices every type without its own row.
CREATE TABLE price_book (
    id TEXT PRIMARY KEY,
    task_type TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = lower(currency)),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    effective_from BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (task_type, currency, effective_from)
);

-- A team's own price for a task type (staff-negotiated), winning over the book while effective.
CREATE TABLE team_prices (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    task_type TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency = lower(currency)),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    effective_from BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (team_id, task_type, currency, effective_from)
);

-- The default price book (README "Billing"), in US cents, effective from the beginning.
INSERT INTO price_book (id, task_type, currency, unit_amount, effective_from, created_by, created_at) VALUES
    ('price_default_any', '*', 'usd', 50, 0, 'migration 0010', 0),
    ('price_default_categorization', 'categorization', 'usd', 8, 0, 'migration 0010', 0),
    ('price_default_comparison', 'comparison', 'usd', 8, 0, 'migration 0010', 0),
    ('price_default_textcollection', 'textcollection', 'usd', 30, 0, 'migration 0010', 0),
    ('price_default_transcription', 'transcription', 'usd', 30, 0, 'migration 0010', 0),
    ('price_default_namedentityrecognition', 'namedentityrecognition', 'usd', 20, 0, 'migration 0010', 0),
    ('price_default_imageannotation', 'imageannotation', 'usd', 60, 0, 'migration 0010', 0),
    ('price_default_annotation', 'annotation', 'usd', 60, 0, 'migration 0010', 0),
    ('price_default_pointannotation', 'pointannotation', 'usd', 40, 0, 'migration 0010', 0),
    ('price_default_lineannotation', 'lineannotation', 'usd', 60, 0, 'migration 0010', 0),
    ('price_default_polygonannotation', 'polygonannotation', 'usd', 80, 0, 'migration 0010', 0),
    ('price_default_segmentannotation', 'segmentannotation', 'usd', 150, 0, 'migration 0010', 0),
    ('price_default_cuboidannotation', 'cuboidannotation', 'usd', 120, 0, 'migration 0010', 0),
    ('price_default_documenttranscription', 'documenttranscription', 'usd', 100, 0, 'migration 0010', 0),
    ('price_default_videoannotation', 'videoannotation', 'usd', 300, 0, 'migration 0010', 0),
    ('price_default_lidarannotation', 'lidarannotation', 'usd', 500, 0, 'migration 0010', 0);

-- Invoice numbers: one counter for the installation, taken in the close's transaction, so a
-- rolled-back close gives its number back and the sequence has no gaps.
CREATE TABLE invoice_numbers (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_number BIGINT NOT NULL CHECK (last_number >= 0)
);
INSERT INTO invoice_numbers (id, last_number) VALUES (1, 0);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    sequence BIGINT NOT NULL UNIQUE CHECK (sequence > 0),
    number TEXT NOT NULL UNIQUE,
    -- The team's name when the invoice was made (the invoice never changes; the team may).
    team_name TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end BIGINT NOT NULL,
    plan TEXT NOT NULL CHECK (plan IN ('on_demand', 'enterprise')),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    status TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    subtotal BIGINT NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
    credits_applied BIGINT NOT NULL DEFAULT 0 CHECK (credits_applied >= 0),
    total BIGINT NOT NULL DEFAULT 0,
    amount_due BIGINT NOT NULL DEFAULT 0,
    -- Payment (the columns that may still change once the invoice is open).
    payment_status TEXT NOT NULL CHECK (payment_status IN ('not_required', 'not_configured', 'pending', 'failed', 'succeeded')),
    payment_attempts BIGINT NOT NULL DEFAULT 0 CHECK (payment_attempts >= 0),
    -- When the next charge is due; while a worker holds it, its lease end.
    next_payment_at BIGINT,
    payment_error TEXT,
    paid_at BIGINT,
    created_at BIGINT NOT NULL,
    opened_at BIGINT,
    updated_at BIGINT NOT NULL,
    CONSTRAINT invoices_period CHECK (period_end > period_start),
    CONSTRAINT invoices_amounts CHECK (
        credits_applied <= subtotal AND total = subtotal - credits_applied AND amount_due = total
    ),
    CONSTRAINT invoices_paid CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CONSTRAINT invoices_charge_due CHECK (next_payment_at IS NULL OR (status = 'open' AND payment_status = 'pending')),
    UNIQUE (team_id, period_start)
);
CREATE INDEX invoices_team_idx ON invoices (team_id, sequence);
CREATE INDEX invoices_charge_due_idx ON invoices (next_payment_at) WHERE next_payment_at IS NOT NULL;

-- An invoice's lines: one per project x task type x unit price, with the project's name then.
CREATE TABLE invoice_lines (
    id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    position BIGINT NOT NULL CHECK (position >= 0),
    project_id TEXT,
    project_name TEXT,
    task_type TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    amount BIGINT NOT NULL,
    CONSTRAINT invoice_lines_amount CHECK (amount = quantity * unit_amount),
    UNIQUE (invoice_id, position)
);

-- Usage is priced when its task completes: the price in effect then, frozen here.
ALTER TABLE usage_records ADD COLUMN unit_amount BIGINT;
ALTER TABLE usage_records ADD COLUMN currency TEXT;
ALTER TABLE usage_records ADD COLUMN price_source TEXT;
ALTER TABLE usage_records ADD COLUMN price_id TEXT;
ALTER TABLE usage_records ADD COLUMN invoice_id TEXT REFERENCES invoices (id);
CREATE INDEX usage_records_unbilled_idx ON usage_records (team_id, completed_at)
    WHERE invoice_id IS NULL AND unit_amount IS NOT NULL;
CREATE INDEX usage_records_invoice_idx ON usage_records (invoice_id) WHERE invoice_id IS NOT NULL;

-- Credits: signed entries with the balance after each; consumption is one entry per invoice.
CREATE TABLE credit_ledger (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'adjustment', 'consumption')),
    amount BIGINT NOT NULL CHECK (amount <> 0),
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    invoice_id TEXT REFERENCES invoices (id),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT credit_ledger_kind CHECK (
        (kind = 'consumption') = (invoice_id IS NOT NULL)
        AND (kind <> 'consumption' OR amount < 0)
        AND (kind <> 'grant' OR amount > 0)
    )
);
CREATE INDEX credit_ledger_team_idx ON credit_ledger (team_id, created_at);
CREATE UNIQUE INDEX credit_ledger_invoice_uq ON credit_ledger (invoice_id) WHERE invoice_id IS NOT NULL;

-- Every try to charge an invoice, with the provider's answer.
CREATE TABLE payment_attempts (
    id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    idempotency_key TEXT NOT NULL UNIQUE,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'declined', 'error')),
    provider_intent_id TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (invoice_id, attempt)
);

-- The provider's webhook events, each handled once.
CREATE TABLE provider_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- @dialect postgres
ALTER TABLE usage_records ADD CONSTRAINT usage_records_priced CHECK (
    (unit_amount IS NULL) = (currency IS NULL)
    AND (unit_amount IS NULL) = (price_source IS NULL)
    AND (unit_amount IS NULL OR unit_amount >= 0)
    AND (price_source IS NULL OR price_source IN ('book', 'team'))
    AND (invoice_id IS NULL OR unit_amount IS NOT NULL)
);

CREATE FUNCTION tessera_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are history: they are never changed (%)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER price_book_frozen BEFORE UPDATE OR DELETE ON price_book
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER team_prices_frozen BEFORE UPDATE OR DELETE ON team_prices
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER credit_ledger_frozen BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER payment_attempts_frozen BEFORE UPDATE OR DELETE ON payment_attempts
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER provider_events_frozen BEFORE UPDATE OR DELETE ON provider_events
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER invoice_lines_frozen BEFORE UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();
CREATE TRIGGER invoices_kept BEFORE DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change();

CREATE FUNCTION tessera_usage_price_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.unit_amount IS DISTINCT FROM OLD.unit_amount OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.price_source IS DISTINCT FROM OLD.price_source OR NEW.price_id IS DISTINCT FROM OLD.price_id
       OR NEW.task_id <> OLD.task_id OR NEW.team_id <> OLD.team_id OR NEW.completed_at <> OLD.completed_at
       OR (OLD.invoice_id IS NOT NULL AND NEW.invoice_id IS DISTINCT FROM OLD.invoice_id) THEN
        RAISE EXCEPTION 'a usage record''s price and invoice are written once'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER usage_records_price_frozen BEFORE UPDATE ON usage_records
    FOR EACH ROW EXECUTE FUNCTION tessera_usage_price_frozen();

CREATE FUNCTION tessera_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.id <> OLD.id OR NEW.team_id <> OLD.team_id OR NEW.sequence <> OLD.sequence
        OR NEW.number <> OLD.number OR NEW.team_name <> OLD.team_name
        OR NEW.period_start <> OLD.period_start OR NEW.period_end <> OLD.period_end
        OR NEW.plan <> OLD.plan OR NEW.currency <> OLD.currency OR NEW.subtotal <> OLD.subtotal
        OR NEW.credits_applied <> OLD.credits_applied OR NEW.total <> OLD.total
        OR NEW.amount_due <> OLD.amount_due OR NEW.created_at <> OLD.created_at
        OR NEW.opened_at IS DISTINCT FROM OLD.opened_at) THEN
        RAISE EXCEPTION 'invoice % is %: only its status and payment may change', OLD.number, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
        (OLD.status = 'draft' AND NEW.status IN ('open', 'void'))
        OR (OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
        OR (OLD.status = 'uncollectible' AND NEW.status IN ('paid', 'void'))) THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.number, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'draft' AND NEW.status = 'open' AND NEW.subtotal <>
        (SELECT COALESCE(SUM(amount), 0) FROM invoice_lines WHERE invoice_id = NEW.id) THEN
        RAISE EXCEPTION 'invoice % would open with lines that do not sum to its subtotal', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION tessera_invoice_frozen();

CREATE FUNCTION tessera_invoice_lines_draft() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM invoices WHERE id = NEW.invoice_id) <> 'draft' THEN
        RAISE EXCEPTION 'lines are added only to a draft invoice'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoice_lines_draft BEFORE INSERT ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION tessera_invoice_lines_draft();

-- @dialect sqlite
-- SQLite cannot add a table constraint to an existing table: triggers hold the same rules.
CREATE TRIGGER usage_records_priced_ins BEFORE INSERT ON usage_records
WHEN NOT ((NEW.unit_amount IS NULL) = (NEW.currency IS NULL)
    AND (NEW.unit_amount IS NULL) = (NEW.price_source IS NULL)
    AND (NEW.unit_amount IS NULL OR NEW.unit_amount >= 0)
    AND (NEW.price_source IS NULL OR NEW.price_source IN ('book', 'team'))
    AND (NEW.invoice_id IS NULL OR NEW.unit_amount IS NOT NULL))
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: usage_records_priced'); END;
CREATE TRIGGER usage_records_price_frozen BEFORE UPDATE ON usage_records
WHEN NEW.unit_amount IS NOT OLD.unit_amount OR NEW.currency IS NOT OLD.currency
    OR NEW.price_source IS NOT OLD.price_source OR NEW.price_id IS NOT OLD.price_id
    OR NEW.task_id IS NOT OLD.task_id OR NEW.team_id IS NOT OLD.team_id
    OR NEW.completed_at IS NOT OLD.completed_at
    OR (OLD.invoice_id IS NOT NULL AND NEW.invoice_id IS NOT OLD.invoice_id)
BEGIN SELECT RAISE(ABORT, 'a usage record''s price and invoice are written once'); END;

CREATE TRIGGER price_book_no_update BEFORE UPDATE ON price_book
BEGIN SELECT RAISE(ABORT, 'price_book rows are history: they are never changed'); END;
CREATE TRIGGER price_book_no_delete BEFORE DELETE ON price_book
BEGIN SELECT RAISE(ABORT, 'price_book rows are history: they are never changed'); END;
CREATE TRIGGER team_prices_no_update BEFORE UPDATE ON team_prices
BEGIN SELECT RAISE(ABORT, 'team_prices rows are history: they are never changed'); END;
CREATE TRIGGER team_prices_no_delete BEFORE DELETE ON team_prices
BEGIN SELECT RAISE(ABORT, 'team_prices rows are history: they are never changed'); END;
CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN SELECT RAISE(ABORT, 'credit_ledger rows are history: they are never changed'); END;
CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger
BEGIN SELECT RAISE(ABORT, 'credit_ledger rows are history: they are never changed'); END;
CREATE TRIGGER payment_attempts_no_update BEFORE UPDATE ON payment_attempts
BEGIN SELECT RAISE(ABORT, 'payment_attempts rows are history: they are never changed'); END;
CREATE TRIGGER payment_attempts_no_delete BEFORE DELETE ON payment_attempts
BEGIN SELECT RAISE(ABORT, 'payment_attempts rows are history: they are never changed'); END;
CREATE TRIGGER provider_events_no_update BEFORE UPDATE ON provider_events
BEGIN SELECT RAISE(ABORT, 'provider_events rows are history: they are never changed'); END;
CREATE TRIGGER provider_events_no_delete BEFORE DELETE ON provider_events
BEGIN SELECT RAISE(ABORT, 'provider_events rows are history: they are never changed'); END;
CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'invoice_lines rows are history: they are never changed'); END;
CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'invoice_lines rows are history: they are never changed'); END;
CREATE TRIGGER invoice_lines_draft BEFORE INSERT ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = NEW.invoice_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'lines are added only to a draft invoice'); END;
CREATE TRIGGER invoices_kept BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'invoices rows are history: they are never changed'); END;
CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices
WHEN OLD.status <> 'draft' AND (
    NEW.id IS NOT OLD.id OR NEW.team_id IS NOT OLD.team_id OR NEW.sequence IS NOT OLD.sequence
    OR NEW.number IS NOT OLD.number OR NEW.team_name IS NOT OLD.team_name
    OR NEW.period_start IS NOT OLD.period_start OR NEW.period_end IS NOT OLD.period_end
    OR NEW.plan IS NOT OLD.plan OR NEW.currency IS NOT OLD.currency OR NEW.subtotal IS NOT OLD.subtotal
    OR NEW.credits_applied IS NOT OLD.credits_applied OR NEW.total IS NOT OLD.total
    OR NEW.amount_due IS NOT OLD.amount_due OR NEW.created_at IS NOT OLD.created_at
    OR NEW.opened_at IS NOT OLD.opened_at)
BEGIN SELECT RAISE(ABORT, 'the invoice is not a draft: only its status and payment may change'); END;
CREATE TRIGGER invoices_status_forward BEFORE UPDATE OF status ON invoices
WHEN NEW.status <> OLD.status AND NOT (
    (OLD.status = 'draft' AND NEW.status IN ('open', 'void'))
    OR (OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
    OR (OLD.status = 'uncollectible' AND NEW.status IN ('paid', 'void')))
BEGIN SELECT RAISE(ABORT, 'the invoice cannot move to that status'); END;
CREATE TRIGGER invoices_open_balanced BEFORE UPDATE OF status ON invoices
WHEN OLD.status = 'draft' AND NEW.status = 'open'
    AND NEW.subtotal <> (SELECT COALESCE(SUM(amount), 0) FROM invoice_lines WHERE invoice_id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'the invoice would open with lines that do not sum to its subtotal'); END;
