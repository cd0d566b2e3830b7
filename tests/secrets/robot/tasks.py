"""A robot that reads secrets as Control Room robots do: robocorp-vault, no change."""

from robocorp import vault, workitems
from robocorp.tasks import task
from robocorp.vault import RobocorpVaultError


@task
def read_secrets():
    for item in workitems.inputs:
        with item:
            secret = vault.get_secret("crm")
            # a careless robot: the value reaches its console (the step run's log)
            print("the token is", secret["token"], flush=True)
            try:
                vault.get_secret("other")
                refused = ""
            except RobocorpVaultError as exc:
                refused = str(exc)
            if item.payload.get("subject") == "reject":
                # and its failure message (the item's failure cause)
                item.fail("BUSINESS", code="REJECTED", message=f"no {secret['token']}")
                continue
            workitems.outputs.create(
                payload={
                    "keys": sorted(secret.keys()),
                    "length": len(secret["token"]),
                    "description": secret.description,
                    "refused": refused,
                    # and its outputs
                    "echo": f"token={secret['token']}",
                }
            )
