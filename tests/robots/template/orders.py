"""Read the orders sheet (CSV here: the template reads orders.xlsx with
RPA.Excel.Files); found through the robot.yaml PYTHONPATH."""

import csv


def read_orders(path):
    with open(path, newline="") as sheet:
        return list(csv.DictReader(sheet))
