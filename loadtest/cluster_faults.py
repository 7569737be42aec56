#!/usr/bin/env python3
"""Takeover and fencing on three nodes (run by loadtest/run-cluster.sh).

Starts three release nodes on one Postgres database and one Redis, then:

  takeover  KILLS rounds: a new card is taken by one node (rotating), probes grab it through
            the other nodes every few milliseconds, the owner is SIGKILLed at a random point of
            its renewal cycle, and the time from
            the kill to the first grab sent after it and acknowledged is the takeover time. The
            killed node is started again before the next round.
  pause     during a grab storm the card's owner is SIGSTOPped for three leases and continued;
            prints the changes its commits fenced and the new owner.

Every round checks that no user was granted a packet twice and that every acknowledged grab is
in the database. Usage: cluster_faults.py DATABASE_URL REDIS_URL SERVER_BIN
Environment: KILLS (default 10), LEASE_TTL_MS (default 3000), BASE_PORT (default 18090).
"""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ADMIN_KEY = "bench-key"
KILLS = int(os.environ.get("KILLS", "10"))
TTL_MS = int(os.environ.get("LEASE_TTL_MS", "3000"))
BASE_PORT = int(os.environ.get("BASE_PORT", "18090"))
PROBE_INTERVAL = 0.005


def post(url, body, headers=None, timeout=2.0):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


def get(url, headers=None, timeout=2.0):
    req = urllib.request.Request(url)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return res.read().decode()


class Node:
    def __init__(self, index, database_url, redis_url, server_bin):
        self.index = index
        self.id = f"node-{index}"
        self.port = BASE_PORT + index
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            POINTS_BIND=f"127.0.0.1:{self.port}",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            POINTS_NODE_ID=self.id,
            POINTS_LEASE_TTL_MS=str(TTL_MS),
            POINTS_ADMIN_KEY=ADMIN_KEY,
            POINTS_DEV_LOGIN="1",
            POINTS_RATE_LIMITS="off",
            POINTS_DB_MAX_CONNECTIONS="8",
            RUST_LOG="error",
        )
        self.server_bin = server_bin
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.server_bin, "serve"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                get(self.url + "/readyz", timeout=1)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise SystemExit(f"{self.id} did not become ready")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


def lease(node, activity):
    view = json.loads(get(node.url + "/admin/cluster", {"X-Admin-Key": ADMIN_KEY}))
    for row in view["data"]["leases"]:
        if row["activity"] == activity:
            return row["node_id"], row["epoch"]
    return None, None


def new_card(node, stock):
    admin = {"X-Admin-Key": ADMIN_KEY}
    batch = post(node.url + "/admin/redpack/sessions",
                 {"app_id": "default", "name": f"faults-{time.time_ns()}",
                  "start_time": "00:00:00", "end_time": "24:00:00"}, admin)["data"]["batch_id"]
    card = post(node.url + "/admin/redpack/cards",
                {"app_id": "default", "batch_id": batch, "reward_type": "积分", "sum": stock,
                 "unit": 1, "ticket": 0, "start_time": "00:00:00", "end_time": "24:00:00"},
                admin)["data"]["card_id"]
    return batch, card


class Users:
    """Dev-login users, handed out once each (a user grabs a card once a day)."""

    def __init__(self, prefix):
        self.prefix, self.next, self.lock = prefix, 0, threading.Lock()

    def take(self, node):
        with self.lock:
            i = self.next
            self.next += 1
        body = post(node.url + "/v2/user/login.json",
                    {"app_id": "default", "auth_code": f"{self.prefix}{i}"})
        return body["data"]["user_id"], "Bearer " + body["data"]["token"]


def rob(node, user, batch, card, timeout=2.0):
    uid, token = user
    return post(node.url + "/v2/redpack/rob.json",
                {"app_id": "default", "user_id": uid, "card_id": card, "batch_id": batch},
                {"Authorization": token}, timeout=timeout)


def check_card(database_url, card, acked):
    """No user granted twice; every acknowledged grab stored."""
    out = subprocess.run(
        ["psql", database_url, "-tAc",
         "SELECT u.platform_uid, COUNT(*) FROM ledger_entries e JOIN users u ON u.id = e.user_id "
         f"WHERE e.kind = 'redpack' AND e.reference LIKE 'card:{card}:%' GROUP BY u.platform_uid"],
        check=True, capture_output=True, text=True).stdout
    granted = {}
    for line in out.split():
        uid, n = line.split("|")
        granted[uid] = int(n)
    doubled = [u for u, n in granted.items() if n > 1]
    lost = [u for u in acked if u not in granted]
    if doubled or lost:
        raise SystemExit(f"card {card}: doubled {doubled[:5]}, lost {lost[:5]}")
    return len(granted)


def takeover_rounds(nodes, database_url):
    times, probes_users = [], Users("probe")
    for r in range(KILLS):
        victim = nodes[r % 3]
        others = [n for n in nodes if n is not victim]
        batch, card = new_card(others[0], 100000)
        first = probes_users.take(others[0])
        if rob(victim, first, batch, card)["status"] is not True:
            raise SystemExit("the first grab failed")
        owner, epoch = lease(others[0], f"redpack:card:{card}")
        assert owner == victim.id, (owner, victim.id)
        acked, done, first_after = [first[0]], threading.Event(), {}
        killed_at = [None]

        def probe(node):
            while not done.is_set():
                try:
                    user = probes_users.take(node)
                except (urllib.error.URLError, OSError):
                    continue
                sent = time.monotonic()
                try:
                    body = rob(node, user, batch, card)
                except (urllib.error.URLError, OSError):
                    continue
                if body.get("status") is True:
                    acked.append(user[0])
                    if killed_at[0] is not None and sent > killed_at[0]:
                        first_after.setdefault("at", time.monotonic())
                        done.set()
                time.sleep(PROBE_INTERVAL)

        threads = [threading.Thread(target=probe, args=(n,)) for n in others for _ in range(2)]
        for t in threads:
            t.start()
        # Killed anywhere in the renewal cycle (every third of the lease).
        time.sleep(0.3 + random.random() * TTL_MS / 1000 / 3)
        killed_at[0] = time.monotonic()
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        done.wait(timeout=TTL_MS / 1000 * 5)
        done.set()
        for t in threads:
            t.join()
        if "at" not in first_after:
            raise SystemExit(f"round {r}: no grab acknowledged after the kill")
        took = (first_after["at"] - killed_at[0]) * 1000
        new_owner, new_epoch = lease(others[0], f"redpack:card:{card}")
        assert new_owner != victim.id and new_epoch > epoch, (new_owner, new_epoch, epoch)
        check_card(database_url, card, acked)
        times.append(took)
        print(f"  round {r + 1}: killed {victim.id}, card {card} to {new_owner} "
              f"(epoch {epoch} -> {new_epoch}) after {took:.0f} ms", file=sys.stderr)
        victim.start()
    return times


def pause_round(nodes, database_url):
    users = Users("pause")
    batch, card = new_card(nodes[0], 100000)
    paused = nodes[1]
    first = users.take(nodes[0])
    assert rob(paused, first, batch, card)["status"] is True
    _, epoch = lease(nodes[0], f"redpack:card:{card}")
    acked, done = [first[0]], threading.Event()

    def storm(i):
        while not done.is_set():
            try:
                user = users.take(nodes[(i + 1) % 3 if i % 3 == 1 else i % 3])
            except (urllib.error.URLError, OSError):
                continue
            for attempt in range(20):
                node = nodes[(i + attempt) % 3]
                try:
                    body = rob(node, user, batch, card, timeout=1.0)
                except (urllib.error.URLError, OSError):
                    continue
                if body.get("status") is True:
                    acked.append(user[0])
                    break
                if body.get("msg") in ("已被抢光了", "您已参与过了"):
                    break
                time.sleep(0.05)

    threads = [threading.Thread(target=storm, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    paused.signal(signal.SIGSTOP)
    time.sleep(TTL_MS / 1000 * 3)
    paused.signal(signal.SIGCONT)
    time.sleep(2.0)
    done.set()
    for t in threads:
        t.join()
    owner, new_epoch = lease(nodes[0], f"redpack:card:{card}")
    metrics = get(paused.url + "/metrics")
    fenced = next((line.split()[-1] for line in metrics.splitlines()
                   if line.startswith("points_cluster_fenced_changes_total")), "0")
    granted = check_card(database_url, card, acked)
    return {"owner_before": paused.id, "owner_after": owner, "epoch_before": epoch,
            "epoch_after": new_epoch, "fenced": int(float(fenced)), "acked": len(acked),
            "granted": granted}


def main():
    database_url, redis_url, server_bin = sys.argv[1:4]
    nodes = [Node(i, database_url, redis_url, server_bin) for i in range(3)]
    try:
        for node in nodes:
            node.start()
        times = takeover_rounds(nodes, database_url)
        pause = pause_round(nodes, database_url)
    finally:
        for node in nodes:
            node.stop()
    times.sort()
    print(json.dumps({
        "lease_ttl_ms": TTL_MS, "kills": len(times),
        "takeover_p50_ms": round(statistics.median(times)), "takeover_max_ms": round(max(times)),
        "pause": pause}))


if __name__ == "__main__":
    main()
