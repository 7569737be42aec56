-- A 001 cyclic task's `cycle.day` (kept in `cycle_days`) is the day its cycle refreshes, the
-- seed's 循环日期: weekday 1-7 (Monday-Sunday) for a weekly task, day 1-31 of the month
-- (clamped to each month's last day) for a monthly one, ignored for a daily one. It was read as
-- the cycle's length in units. A stored 1 means the same under both readings (Monday, the 1st,
-- every day). Other stored values are brought into range; such a task's current cycle begins
-- at its refresh day from now on, as after an operator's change of the cycle (claims are keyed
-- by the first day of their cycle).
UPDATE center_tasks SET cycle_days = 1 WHERE kind = 'cyclic' AND cycle_type = 'day';
UPDATE center_tasks SET cycle_days = 7
 WHERE kind = 'cyclic' AND cycle_type = 'week' AND cycle_days > 7;
UPDATE center_tasks SET cycle_days = 31
 WHERE kind = 'cyclic' AND cycle_type = 'month' AND cycle_days > 31;
UPDATE center_tasks SET cycle_days = 1
 WHERE kind = 'cyclic' AND cycle_type IN ('week', 'month') AND cycle_days < 1;
