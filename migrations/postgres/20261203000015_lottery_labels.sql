-- A lottery prize's level is the label the operator gives it (`一等奖`), shown to players as is.
-- `level` stays the prize's slot, which names its stock counter; the labels of prizes saved
-- before are their slot numbers.
ALTER TABLE lottery_prizes ADD COLUMN label TEXT NOT NULL DEFAULT '';
UPDATE lottery_prizes SET label = CAST(level AS TEXT);
