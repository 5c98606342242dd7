"""2. Admission and the queue: prices, allowances and the ledger, then the fair, leased priority queue and its state
machine."""
