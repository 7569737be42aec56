-- Idempotency keys a caller chooses for a user (002 `transactionId` and `operationId`, the shop's
-- `transaction_id`) are scoped to that user: `<namespace>:<key>` becomes
-- `<namespace>@<user id>:<key>`, so a replay of a request made before keeps finding its entry
-- (an extra entry's `#<n>` suffix stays part of the key). The server routes' keys (`core:`,
-- `center:`) and the keys the engine builds are unchanged.
UPDATE ledger_entries
   SET idem_key = substr(idem_key, 1, instr(idem_key, ':') - 1) || '@' || user_id || ':'
                  || substr(idem_key, instr(idem_key, ':') + 1)
 WHERE idem_key LIKE 'open:%' OR idem_key LIKE 'report:%' OR idem_key LIKE 'shop:%';
