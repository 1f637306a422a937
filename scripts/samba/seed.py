#!/usr/bin/python3
# Seeds a provisioned (stopped) Samba AD DC directly through Samba's Python bindings,
# inside one transaction with ldb's batch_mode, as Samba's own domain join does
# (~1000 objects/s instead of ~100/s over LDAP). Input: JSON lines from the generator.
# Output: one JSON object on stdout saying what landed, what was refused and why.
#
# Usage: seed.py <samba dir> <records.jsonl>
# Env:   NIMBUS_SEED_PASSWORD  password for records with "password": true
#        (an environment variable, so it never shows on a command line).
import json
import os
import sys
import time

import ldb
from samba.auth import system_session
from samba.dcerpc import misc
from samba.ndr import ndr_pack
from samba.param import LoadParm
from samba.samdb import SamDB


def main():
    target, records_path = sys.argv[1], sys.argv[2]
    password = os.environ.get("NIMBUS_SEED_PASSWORD", "")
    lp = LoadParm()
    lp.load(os.path.join(target, "etc", "smb.conf"))
    started = time.time()
    # batch_mode: no fsync per write and a transaction index cache; without it the
    # load turns quadratic (20k users ~ 9 min instead of ~20 s).
    db = SamDB(
        url=os.path.join(target, "private", "sam.ldb"),
        session_info=system_session(),
        lp=lp,
        options=["batch_mode:1"],
    )
    added = 0
    refused = []
    failed = []
    # relax: lets us set objectGUID (deterministic GUIDs shared with the LDIF export and
    # the manifest) and isCriticalSystemObject, which AD reserves to the system.
    controls = ["relax:0"]
    db.transaction_start()
    try:
        with open(records_path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                if rec["op"] == "upnSuffixes":
                    partitions = "CN=Partitions," + str(db.get_config_basedn())
                    m = ldb.Message(ldb.Dn(db, partitions))
                    m["uPNSuffixes"] = ldb.MessageElement(rec["values"], ldb.FLAG_MOD_REPLACE, "uPNSuffixes")
                    db.modify(m)
                    continue
                attrs = rec["attrs"]
                try:
                    add(db, rec, attrs, password, controls)
                    added += 1
                except ldb.LdbError as e:
                    num, msg = e.args
                    upn = attrs.get("userPrincipalName")
                    # AD (2012 R2+) and Samba refuse a UPN already in use. Record it and add
                    # the object without the UPN, so the manifest tells the truth.
                    if num == ldb.ERR_CONSTRAINT_VIOLATION and upn and "userPrincipalName" in msg:
                        rest = {k: v for k, v in attrs.items() if k != "userPrincipalName"}
                        add(db, rec, rest, password, controls)
                        added += 1
                        refused.append({
                            "key": rec["key"], "dn": rec["dn"], "attribute": "userPrincipalName",
                            "value": upn[0], "error": msg.strip(), "outcome": "added without userPrincipalName",
                        })
                    else:
                        failed.append({"key": rec.get("key"), "dn": rec["dn"], "error": "%d: %s" % (num, msg.strip())})
        db.transaction_commit()
    except BaseException:
        db.transaction_cancel()
        raise
    critical = []
    for r in db.search(base=str(db.get_default_basedn()), scope=ldb.SCOPE_SUBTREE,
                       expression="(&(isCriticalSystemObject=TRUE)(objectClass=user))",
                       attrs=["objectGUID", "sAMAccountName"]):
        critical.append({
            "dn": str(r.dn),
            "objectGUID": str(misc.GUID(r["objectGUID"][0])),
            "sAMAccountName": str(r["sAMAccountName"][0]),
        })
    json.dump({"added": added, "seconds": round(time.time() - started, 3), "refused": refused,
               "failed": failed, "critical": critical}, sys.stdout)


def add(db, rec, attrs, password, controls):
    m = ldb.Message(ldb.Dn(db, rec["dn"]))
    for name, values in attrs.items():
        m[name] = ldb.MessageElement(values, ldb.FLAG_MOD_ADD, name)
    if rec.get("guid"):
        m["objectGUID"] = ldb.MessageElement(ndr_pack(misc.GUID(rec["guid"])), ldb.FLAG_MOD_ADD, "objectGUID")
    if rec.get("critical"):
        m["isCriticalSystemObject"] = ldb.MessageElement("TRUE", ldb.FLAG_MOD_ADD, "isCriticalSystemObject")
    if rec.get("password"):
        if not password:
            raise SystemExit("seed.py: record %s wants a password but NIMBUS_SEED_PASSWORD is empty" % rec["dn"])
        m["unicodePwd"] = ldb.MessageElement(('"%s"' % password).encode("utf-16-le"), ldb.FLAG_MOD_ADD, "unicodePwd")
    db.add(m, controls=controls)


if __name__ == "__main__":
    main()
