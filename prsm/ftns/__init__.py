"""FTNS: the token PRSM users pay in and model owners earn; the exact ledger lives here."""
