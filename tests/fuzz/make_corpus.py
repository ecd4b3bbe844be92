#!/usr/bin/env python3
"""Writes the seed inputs of frame_decoder_fuzz into a folder (default: corpus/ next to this file).

Each seed is a well-formed ring in the fuzz target's input layout (see
frame_decoder_fuzz.cpp): head u64, tail word u64, geometry byte, ring bytes.
Payloads follow cereal's binary format as procpool writes it: arithmetic
little-endian, sizes as u64, a result starts with a status byte, an error is
(u8 kind, string type name, string message). A task starts with its
invoker's code ref, here symbolic: module word k names the target's k-th
invoker (INVOKERS below, in the order of invokers() in the target), and a
function pointer's ref with module word 1 names the target's function.
"""
import os
import struct
import sys

PADDING, TASK, STOP, RESULT = 1, 2, 3, 4
SIDE_CHANNEL = 1
RUNTIME_ERROR, SERIALIZATION, REMOTE = 5, 10, 11


def u8(v): return struct.pack('<B', v)
def i32(v): return struct.pack('<i', v)
def u64(v): return struct.pack('<Q', v)
def f64(v): return struct.pack('<d', v)
def string(s): return u64(len(s)) + s.encode()
def error(kind, type_name, message): return u8(kind) + string(type_name) + string(message)
def value(body): return u8(0) + body
def failed(body): return u8(1) + body


# The fuzz target's invokers, by their 1-based index.
NEGATE, REVERSE, SUFFIX, SUMMARIZE, PICKY, TWICE_CHUNK, NOTHING = range(1, 8)


def task(invoker, body, callable_ref=b''):
    return u64(invoker) + u64(0) + callable_ref + body


def frame(kind, payload, task_id=0, flags=0):
    span = 16 + ((len(payload) + 15) & ~15)
    return (struct.pack('<IHHQ', len(payload), kind, flags, task_id) + payload).ljust(span, b'\0')


def ring(frames, capacity=4096, head=0, prefix=b'', side_mode=0):
    """A ring whose head is `head`, holding `prefix` (placed at head's offset) then `frames`.

    side_mode: what comes ahead of a side-channel frame: 0 a memfd, 2 nothing, 3 a pipe.
    """
    shift = {64 << s: s for s in range(7)}[capacity]
    body = prefix + b''.join(frames)
    assert len(body) <= capacity
    data = bytearray(capacity)
    offset = head % capacity
    used = 0
    for i, b in enumerate(body):
        data[(offset + i) % capacity] = b
        used = max(used, (offset + i) % capacity + 1)
    header = u64(head % 2**64) + u64(len(body)) + u8(shift | side_mode << 4)
    return header + bytes(data[:used])


def seeds():
    strings = u64(2) + string('a') + string('bc')
    mapping = u64(2) + i32(1) + string('one') + i32(2) + string('two')
    chunk = u64(3) + value(string('x')) + failed(error(RUNTIME_ERROR, 'std::runtime_error', 'item')) + value(string('yz'))
    yield 'int', ring([frame(RESULT, value(i32(42)), task_id=1)])
    yield 'string', ring([frame(RESULT, value(string('hello')), task_id=2)])
    yield 'vector_string', ring([frame(RESULT, value(strings), task_id=3)])
    yield 'map', ring([frame(RESULT, value(mapping), task_id=4)])
    yield 'tuple', ring([frame(RESULT, value(i32(7) + f64(2.5) + string('t')), task_id=5)])
    yield 'error', ring([frame(RESULT, failed(error(RUNTIME_ERROR, 'std::runtime_error', 'boom')), task_id=6)])
    yield 'remote_error', ring([frame(RESULT, failed(error(REMOTE, 'my::Oops', 'bad')), task_id=7)])
    yield 'chunk', ring([frame(RESULT, value(chunk), task_id=3)])
    yield 'mixed', ring([frame(TASK, b'\1\2\3', task_id=8), frame(STOP, b''), frame(RESULT, value(i32(-1)), task_id=9),
                         frame(RESULT, failed(error(SERIALIZATION, 'procpool::SerializationError', 's')), task_id=10)])
    side = value(string('large'))
    side_frame = frame(RESULT, u64(len(side)) + side, task_id=11, flags=SIDE_CHANNEL)
    yield 'side_channel', ring([side_frame])
    yield 'side_channel_no_fd', ring([side_frame], side_mode=2)
    yield 'side_channel_pipe', ring([side_frame], side_mode=3)
    # Wrapped: a padding frame fills the end of a 64-byte ring, the result is at offset 0.
    yield 'wrapped', ring([frame(RESULT, value(i32(5)), task_id=12)], capacity=64, head=48,
                          prefix=frame(PADDING, b''))
    # Tasks, run as a worker runs them, then their results read as the parent reads them.
    yield 'task_function_pointer', ring([frame(TASK, task(NEGATE, i32(7), callable_ref=u64(1) + u64(0)), task_id=20)])
    yield 'task_lambda', ring([frame(TASK, task(REVERSE, string('abc')), task_id=21)])
    yield 'task_function_object', ring([frame(TASK, task(SUFFIX, string('x' * 300), callable_ref=string('!' * 900)),
                                              task_id=22)])
    yield 'task_containers', ring([frame(TASK, task(SUMMARIZE, strings + mapping), task_id=23)])
    yield 'task_throws', ring([frame(TASK, task(PICKY, i32(-1)), task_id=24), frame(TASK, task(PICKY, i32(0)), task_id=25),
                               frame(TASK, task(PICKY, i32(3)), task_id=26)])
    yield 'task_chunk', ring([frame(TASK, task(TWICE_CHUNK, u64(3) + string('a') + string('') + string('b' * 200)),
                                    task_id=27)])
    yield 'task_void', ring([frame(TASK, task(NOTHING, i32(1)), task_id=28)])
    yield 'task_foreign_build', ring([frame(TASK, u64(0xdeadbeefcafef00d) + u64(0x1000) + i32(1), task_id=29)])
    big_task = task(REVERSE, string('large'))
    yield 'task_side_channel', ring([frame(TASK, u64(len(big_task)) + big_task, task_id=30, flags=SIDE_CHANNEL)])
    # Indices near 2**64: offsets still come out right as they wrap.
    yield 'high_indices', ring([frame(RESULT, value(string('hi')), task_id=13)], capacity=128, head=2**64 - 32)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, 'seed_' + name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
