-- Orders dead-lettered after their last attempt failed ('dead'), counted and listed by admins.
CREATE INDEX fulfilment_orders_dead ON fulfilment_orders (app_id, id) WHERE status = 'dead';
