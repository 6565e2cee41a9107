"""Fill an rtserver database with synthetic transfers, for the query benchmark (scenario 6).

Records go through :func:`rtserver.store.transactions.store_new_records` (the store's
bulk insert: the rows, the address index and the token parties the chain watcher's
:func:`~rtserver.store.transactions.store_records` writes, a batch per statement) into a
database the store's own migrations created, in transactions of ``--batch`` records.
Only for the load, the connection skips fsync, journalling and foreign-key checks; the
benchmark's server opens the file with its normal settings. Shape of the data
(deterministic, seeded):

* ``--addresses`` EVM addresses; the first one (``HOT``) takes part in ``--hot-share`` of
  all transfers, the next ten in 1 % each, the rest uniformly;
* hashes and addresses random-looking (seeded), as on a chain;
* a quarter of the transfers are ERC-20 transfers of one of five tokens, the rest native;
* 80 % on chain 1, the rest on chain 137 (one ``ethereum`` chain type: an app's watch
  list covers both); a hundred transfers a block, blocks 12 s apart.

Before the first record, an app is created that watches the addresses the benchmark
queries: an app reads an address's records stored since it began watching it
(docs/address-monitoring.md, "Who reads which records"), so this measures the default,
per-app read path.

Usage: ``python benchmarks/gen_transfers.py --data-dir DIR --count 1000000``
Prints one JSON line: the count, the seconds it took, the addresses to query and the
API key of the app that watches them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

from rtserver.config import load_config
from rtserver.records import TokenTransfer, TransactionRecord
from rtserver.store import SCHEMA_VERSION, apps, connect_database, transaction, watched
from rtserver.store.transactions import store_new_records

CHAIN_TYPE = "ethereum"
CHAIN_ID = 1
OTHER_CHAIN_ID = 137


def _hex(label: str, i: int, size: int) -> str:
    """A fixed, random-looking ``size``-byte hex value: real hashes and addresses are
    random, and a store that packs its rows must not be measured on zeros."""
    return "0x" + hashlib.blake2b(f"{label}{i}".encode(), digest_size=size).hexdigest()


def address(i: int) -> str:
    return _hex("address", i, 20)


TOKENS = [_hex("token", i, 20) for i in range(5)]


def make_record(rng: random.Random, n: int, addresses: int, hot_share: float) -> TransactionRecord:
    roll = rng.random()
    if roll < hot_share:
        a = 0
    elif roll < hot_share + 0.10:
        a = 1 + rng.randrange(10)
    else:
        a = 11 + rng.randrange(addresses - 11)
    b = rng.randrange(addresses)
    sender, receiver = (address(a), address(b)) if rng.random() < 0.5 else (address(b), address(a))
    height = 20_000_000 + n // 100
    common = {
        "chain_type": CHAIN_TYPE,
        "chain_id": CHAIN_ID if rng.random() < 0.8 else OTHER_CHAIN_ID,
        "tx_hash": _hex("tx", n, 32),
        "height": height,
        "tx_time": 1_700_000_000 + n // 100 * 12,
        "block_hash": _hex("block", height, 32),
        "sender": sender,
        "fee_payer": sender,
        "tx_status": "success",
        "tx_fee": "21000000000000",
        "gas_limit": "60000",
        "gas_used": "21000",
        "gas_price": "1000000000",
        "nonce": str(n % 10_000),
    }
    if rng.random() < 0.25:
        token = TOKENS[rng.randrange(len(TOKENS))]
        amount = str(rng.randrange(1, 10**24))
        return TransactionRecord(
            **common,
            receiver=token,
            transfer_type="token",
            amount="0",
            symbol="ETH",
            decimals=18,
            method_id="0xa9059cbb",
            method_call="transfer(address,uint256)",
            token_transfers=(
                TokenTransfer(
                    from_address=sender,
                    to_address=receiver,
                    token_contract_address=token,
                    symbol="TKN",
                    amount=amount,
                    decimals=18,
                ),
            ),
        )
    return TransactionRecord(
        **common,
        receiver=receiver,
        transfer_type="native",
        amount=str(rng.randrange(1, 10**20)),
        symbol="ETH",
        decimals=18,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--hot-share", type=float, default=0.10)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)

    config = load_config(None, overrides={"server": {"data_dir": args.data_dir}})
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    # Generation only: the benchmark's server opens the file with its normal settings. A
    # load that fails leaves no marker file, and the benchmark starts again from nothing.
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA cache_size = -524288")
    rng = random.Random(args.seed)
    (existing,) = conn.execute("SELECT count(*) FROM transactions").fetchone()
    if existing:
        raise SystemExit(
            "gen_transfers: the database already holds transfers; use a new --data-dir"
        )
    queried = {
        "hot_address": address(0),
        "warm_address": address(1),
        "cold_address": address(args.addresses - 1),
    }
    with transaction(conn):
        app = apps.create_app(conn, "bench-query", now=time.time())
        watched.add_addresses(conn, app.app.app_id, CHAIN_TYPE, queried.values(), now=time.time())
    started = time.monotonic()
    n = existing
    while n < args.count:
        batch = [
            make_record(rng, i, args.addresses, args.hot_share)
            for i in range(n, min(n + args.batch, args.count))
        ]
        with transaction(conn):
            store_new_records(conn, batch, now=time.time())
        n += len(batch)
        if n % (args.batch * 10) == 0 or n == args.count:
            elapsed = time.monotonic() - started
            print(
                f"gen_transfers: {n}/{args.count} in {elapsed:.0f} s", file=sys.stderr, flush=True
            )
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    print(
        json.dumps(
            {
                "count": args.count,
                "generated": args.count - existing if args.count > existing else 0,
                "seconds": round(time.monotonic() - started, 1),
                "chain_type": CHAIN_TYPE,
                "chain_id": CHAIN_ID,
                **queried,
                "token": TOKENS[0],
                "api_key": app.api_key,
                "schema": SCHEMA_VERSION,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
