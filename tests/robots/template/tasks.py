"""Producer -> consumer, as in Robocorp's template-python-workitems: the producer
splits the rows of the input item's orders file into output items, the consumer
processes each one."""

import os
from pathlib import Path

from orders import read_orders
from robocorp import workitems
from robocorp.tasks import task


@task
def producer():
    """Split the orders file's rows into output work items for the next step."""
    # the template downloads into the robot's root (a fresh copy per run in Control
    # Room); here the root is shared, so into this run's artifacts
    artifacts = Path(os.environ["ROBOT_ARTIFACTS"])
    artifacts.mkdir(parents=True, exist_ok=True)
    for item in workitems.inputs:
        path = item.get_file("orders.csv", artifacts / "orders.csv")
        for row in read_orders(path):
            workitems.outputs.create(
                {"Name": row["Name"], "Zip": row["Zip"], "Product": row["Item"]}
            )


@task
def consumer():
    """Process every order the producer made; a row without a zip fails."""
    artifacts = Path(os.environ["ROBOT_ARTIFACTS"])
    artifacts.mkdir(parents=True, exist_ok=True)
    for item in workitems.inputs:
        try:
            name, zip_code = item.payload["Name"], item.payload["Zip"]
            if not zip_code:
                raise KeyError("Zip")
            print(f"Processing order: {name}, {zip_code}, {item.payload['Product']}")
            item.done()
        except KeyError as err:
            item.fail(code="MISSING_VALUE", message=str(err))
