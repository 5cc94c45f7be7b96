"""Manages SCRAM users through confluent-kafka's AdminClient over SASL_SSL (run by
scripts/kafka-clients.sh): `create USER PASSWORD`, `describe`, `delete USER`.

The admin connects as the broker's bootstrap user; its password comes from the
environment (RUNNEL_SASL_BOOTSTRAP_PASSWORD), never the command line.
"""
import os
import sys

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)


def main():
    bootstrap, ca, action, *rest = sys.argv[1:]
    admin = AdminClient({
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": ca,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": os.environ["RUNNEL_SASL_BOOTSTRAP_PASSWORD"],
    })
    if action == "create":
        user, password = rest
        changes = [
            UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())
            for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)
        ]
        for fut in admin.alter_user_scram_credentials(changes).values():
            fut.result(timeout=20)
    elif action == "delete":
        (user,) = rest
        changes = [
            UserScramCredentialDeletion(user, m)
            for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)
        ]
        for fut in admin.alter_user_scram_credentials(changes).values():
            fut.result(timeout=20)
    elif action == "describe":
        described = admin.describe_user_scram_credentials().result(timeout=20)
        for user in sorted(described):
            infos = sorted(f"{i.mechanism.name}:{i.iterations}" for i in described[user].scram_credential_infos)
            print(user, " ".join(infos))
    else:
        sys.exit(f"unknown action {action}")


if __name__ == "__main__":
    main()
