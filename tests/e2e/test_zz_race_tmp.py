import sqlite3, time, httpx
from tests.e2e.test_crash import own_redis, shared_db, make_banks, rconn, query, sql_versions, wait_persisted, keys  # noqa
from tests.support import Api

def test_flush_while_persister_blocked(server_factory, own_redis, shared_db):
    url, db = shared_db
    srv = server_factory(database_url=url, redis=own_redis.url)
    api = Api(srv.base_url)
    bank = make_banks(api, 1)[0]
    rid = api.open_round()["round_id"]
    for i in range(3):
        assert api.offer(bank.headers, rid, conditions=f"a{i}").status_code == 201
    wait_persisted(own_redis, db, [rid])
    lock = sqlite3.connect(db, timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    acked_before = [api.offer(bank.headers, rid, conditions=f"b{i}").json() for i in range(3)]
    print("acked while SQL is locked:", [(x["seq"], x["conditions"]) for x in acked_before])
    time.sleep(1.0)  # the persister has read seq 4..6 from Redis and waits for the lock
    rconn(own_redis).flushall()
    after = api.offer(bank.headers, rid, conditions="after-flush")
    print("after flush:", after.status_code, after.json().get("seq"))
    lock.execute("ROLLBACK"); lock.close()
    time.sleep(3)
    rows = sql_versions(db, rid)
    print("SQL:", [(r["seq"], r["conditions"]) for r in rows])
    print("persisted_seq", query(db, "SELECT persisted_seq FROM rounds")[0][0], "redis seq", rconn(own_redis).hget(keys(rid)["m"], "seq"))
    book = httpx.get(f"{srv.base_url}/v1/bank/rounds/{rid}/book", headers=bank.headers).json()
    print("book:", [(o["conditions"], o["version"]) for o in book["offers"]], "seq", book["seq"])
