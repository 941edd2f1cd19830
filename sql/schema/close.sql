-- Period close state (SPEC §5): which periods are closed, what they reported when they closed, and who did what.

CREATE TABLE IF NOT EXISTS closed_periods (
    period        INTEGER PRIMARY KEY,  -- YYYYMM
    close_number  INTEGER NOT NULL,     -- the close that froze it (1, 2, …; a re-close after a reopen gets a new number)
    exported      BOOLEAN NOT NULL,     -- false for history closed along with the first close
    closed_at     TIMESTAMP NOT NULL,
    closed_by     VARCHAR NOT NULL,
    rows_hash     HUGEINT NOT NULL      -- checksum of the period's frozen rows at its close
);

CREATE TABLE IF NOT EXISTS close_audit (
    event_id      BIGINT PRIMARY KEY,
    action        VARCHAR NOT NULL,     -- close | reopen | close_refused
    period        INTEGER NOT NULL,
    close_number  INTEGER,
    actor         VARCHAR NOT NULL,
    event_at      TIMESTAMP NOT NULL,
    run_id        VARCHAR,
    details       VARCHAR
);

-- Everything a closed period reports, per line and period, frozen at its close (SPEC §4 "Closed periods never change").
CREATE TABLE IF NOT EXISTS frozen_line_periods (
    Actg_Period INTEGER NOT NULL,
    Sales_Order_Id VARCHAR, Sales_Order_Item_Id VARCHAR NOT NULL, Reference_Invoice_Number VARCHAR,
    Product_Id VARCHAR, Product_Code VARCHAR, Product_Name VARCHAR, Class VARCHAR, Location VARCHAR, Department VARCHAR,
    Customer_Id VARCHAR, Subsidiary_Id VARCHAR, Contract_Date DATE, Currency VARCHAR, Revenue_Rule VARCHAR,
    Booking_Amount BIGINT,
    Beginning_Unearned_Revenue BIGINT, New_Billing BIGINT, Revenue BIGINT, Foreign_Currency_Change BIGINT,
    Adjustment_To_Unearned_Revenue BIGINT, Ending_Unearned_Revenue BIGINT,
    Beginning_Unbilled_Receivable BIGINT, Ending_Unbilled_Receivable BIGINT, Position BIGINT,
    Beginning_Backlog BIGINT, New_Booking BIGINT, Ending_Backlog BIGINT,
    Beginning_Deferred_Expense BIGINT, New_Commissions BIGINT, Commission_Amortization BIGINT, Ending_Deferred_Expense BIGINT,
    Home_Currency VARCHAR,
    Revenue_Home BIGINT, New_Billing_Home BIGINT, Foreign_Currency_Change_Home BIGINT, Adjustment_Home BIGINT,
    Beginning_Unearned_Home BIGINT, Ending_Unearned_Home BIGINT, Beginning_Unbilled_Home BIGINT, Ending_Unbilled_Home BIGINT,
    Position_Home BIGINT, New_Commissions_Home BIGINT, Commission_Amortization_Home BIGINT
);

CREATE TABLE IF NOT EXISTS frozen_journal_lines (
    Actg_Period INTEGER NOT NULL, Sales_Order_Id VARCHAR, Sales_Order_Item_Id VARCHAR NOT NULL,
    Account_Id VARCHAR, Product_Id VARCHAR, Customer_Id VARCHAR, Link_Id VARCHAR, Class VARCHAR,
    Location VARCHAR, Department VARCHAR, Subsidiary_Id VARCHAR,
    Account_Type VARCHAR NOT NULL, Net_Debit BIGINT NOT NULL, Currency VARCHAR NOT NULL
);

-- Per contract line and closed period, the checksum of its journals rows as the continuous export's change test
-- computes it (the sum of sql/exports/journals.sql's row checksums _h): written by a close for the periods it
-- freezes and dropped by a reopen with them (lib/close.py), so that a change-sized continuous export compares a
-- row per line and period, not every frozen journal line, which grow by every line's lines at each close.
CREATE TABLE IF NOT EXISTS frozen_journal_checksums (
    Actg_Period INTEGER NOT NULL, Sales_Order_Item_Id VARCHAR NOT NULL, Sales_Order_Id VARCHAR,
    content_hash HUGEINT NOT NULL
);

CREATE TABLE IF NOT EXISTS frozen_orders (
    Actg_Period INTEGER NOT NULL, Sales_Order_Id VARCHAR, Sales_Order_Item_Id VARCHAR NOT NULL, Product_Id VARCHAR,
    Customer_Id VARCHAR, Order_Date DATE, Bookings_Amount BIGINT, Quantity DECIMAL(18,6), List_Price DECIMAL(18,6),
    Sale_Price DECIMAL(18,6), Allocated_Revenue BIGINT, IsActive BOOLEAN, Service_Start_Date DATE,
    Service_End_Date DATE, MRR BIGINT, Duration_Hundredths BIGINT, Currency VARCHAR, Reference_Invoice_Number VARCHAR
);

CREATE TABLE IF NOT EXISTS frozen_invoice_register (
    Actg_Period INTEGER NOT NULL, Sales_Order_Id VARCHAR, Sales_Order_Item_Id VARCHAR, Invoice_Number VARCHAR NOT NULL,
    Invoice_Line VARCHAR NOT NULL,
    BS_CustomField02 VARCHAR, BS_CustomField03 VARCHAR, BS_CustomField04 VARCHAR, BS_CustomField05 VARCHAR,
    BS_CustomField06 VARCHAR, BS_CustomField07 VARCHAR, BS_CustomField08 VARCHAR, BS_CustomField09 VARCHAR,
    BS_CustomField10 VARCHAR, Billing_Date DATE, Billing_Amount BIGINT, Currency VARCHAR
);
