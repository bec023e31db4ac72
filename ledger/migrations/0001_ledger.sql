-- The ledger: the system of record for stock, reservations, orders and the outbox.
-- Available is never stored: it is on_hand - reserved - pending, computed on read.

CREATE TABLE warehouses (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per SKU: its version (strictly increasing, one step per event) and the row lock
-- that serialises every change to the SKU, so per-SKU outbox order equals commit order.
-- `warehouses` counts the SKU's stock rows, so a lock that also read them can tell it saw all.
CREATE TABLE sku_versions (
    sku         text PRIMARY KEY,
    version     bigint NOT NULL CHECK (version >= 0),
    warehouses  int    NOT NULL DEFAULT 0 CHECK (warehouses >= 0)
);

CREATE TABLE stock (
    sku        text   NOT NULL REFERENCES sku_versions (sku),
    warehouse  text   NOT NULL REFERENCES warehouses (id),
    on_hand    bigint NOT NULL DEFAULT 0,
    reserved   bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    pending    bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
    PRIMARY KEY (sku, warehouse)
);

CREATE TABLE reservations (
    id              uuid PRIMARY KEY,
    sku             text        NOT NULL,
    warehouse       text        NOT NULL,
    qty             bigint      NOT NULL CHECK (qty > 0),
    order_id        text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('cart', 'checkout')),
    state           text        NOT NULL CHECK (state IN ('active', 'committed', 'shipped', 'released')),
    release_reason  text,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (sku, warehouse) REFERENCES stock (sku, warehouse)
);
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE state = 'active';

CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    channel     text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('open', 'shipped', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_lines (
    order_id        text    NOT NULL REFERENCES orders (order_id),
    line_no         int     NOT NULL,
    sku             text    NOT NULL,
    warehouse       text    NOT NULL,
    qty             bigint  NOT NULL CHECK (qty > 0),
    shipped         bigint  NOT NULL DEFAULT 0 CHECK (shipped >= 0 AND shipped <= qty),
    released        bigint  NOT NULL DEFAULT 0 CHECK (released >= 0 AND shipped + released <= qty),
    reservation_id  uuid REFERENCES reservations (id),
    PRIMARY KEY (order_id, line_no),
    FOREIGN KEY (sku, warehouse) REFERENCES stock (sku, warehouse)
);

-- Oversells that already happened (a marketplace sale the ledger could not refuse).
CREATE TABLE oversells (
    id               bigserial PRIMARY KEY,
    sku              text        NOT NULL,
    warehouse        text        NOT NULL,
    order_id         text        NOT NULL,
    available_after  bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: written in the same transaction as the stock change, published by
-- the single relay in id order, marked after the PubAck.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    subject       text        NOT NULL,
    event_type    text        NOT NULL,
    payload       json        NOT NULL,  -- json, not jsonb: the exact bytes published
    traceparent   text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at  timestamptz,
    stream_seq    bigint
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Idempotency-Key records: the first successful response, replayed on retries.
CREATE TABLE idempotency (
    key           text PRIMARY KEY,
    request_hash  text        NOT NULL,
    status        smallint    NOT NULL,
    response      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_created ON idempotency (created_at);

