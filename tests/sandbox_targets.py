"""Functions the sandbox tests run in a worker: each misbehaves in one way."""

import time


def echo(text: str) -> str:
    return text


def spin(text: str) -> str:
    while True:  # burns CPU until the kernel stops it
        pass


def nap(text: str) -> str:
    time.sleep(float(text))
    return "woke"


def hog(text: str) -> str:
    return str(len(bytearray(int(text))))


def flood(text: str) -> str:
    return "x" * int(text)


def crash(text: str) -> str:
    raise ValueError(text)
