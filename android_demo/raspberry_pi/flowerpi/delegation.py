"""How many of a model's nodes each delegate took, read from a loaded interpreter.

After ``allocate_tensors`` the interpreter lists the model's own nodes followed by one
``DELEGATE`` node per partition a delegate claimed. A partition is every original node
between the delegate node's input tensors and its output tensors: walking back from each
output through the nodes that produce it, and stopping at the delegate node's inputs (or at
tensors no node produces: weights and model inputs), visits exactly the nodes it replaced.
This reads ``Interpreter._get_ops_details`` (a private method of both runtimes, in every
release since TF 2.5).
"""

from __future__ import annotations


def delegated_nodes(interpreter) -> tuple[int, int]:
    """``(nodes claimed by any delegate, nodes of the model)`` of an allocated interpreter."""
    details = interpreter._get_ops_details()
    original = [d for d in details if d["op_name"] != "DELEGATE"]
    producer = {int(t): d["index"] for d in original for t in d["outputs"]}
    inputs_of = {d["index"]: [int(t) for t in d["inputs"] if t >= 0] for d in original}
    claimed: set[int] = set()
    for node in (d for d in details if d["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in claimed:
                continue
            claimed.add(index)
            stack.extend(inputs_of[index])
    return len(claimed), len(original)
