# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The usage log's lines for a batch of request records: the hand-written compiled twin of `_usageline_py.py`.

Same bytes as the pure twin for every input (tests/test_usage_line.py holds them to it), written into one C buffer:
the pure twin's f-string formats ~15 numbers through Python objects per request (~17k machine instructions a line),
this writes them in ~4k (benchmarks/README.md, stop 24). What makes the difference:

- A RequestRecord's fields are read straight from its slots (the offsets its member descriptors publish, taken once
  at import) instead of one attribute lookup each; anything else, a subclass included, goes through getattr.
- Integers are written with C arithmetic; floats with a fixed number of decimals by scaling and rounding when the
  scaled value is clearly away from a half (then that is exactly what correct rounding gives), otherwise by
  CPython's own `PyOS_double_to_string`, which is what `format(x, ".2f")` calls.
- Text is copied as its cached UTF-8; the request id is copied as it is when it needs no JSON escape.

Every case the fast paths do not cover (a value of another type, a lone surrogate, a negative zero) is handed to
the same Python expression the pure twin evaluates, so the two cannot drift apart on odd input.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, PyObject_IsTrue
from libc.math cimport fabs, floor, isfinite, rint, signbit
from libc.string cimport memcpy, strlen

from math import isfinite as py_isfinite

from ccproxy.core.jsoncodec import dumps_text
from ccproxy.events import RequestRecord

__all__ = ["usage_block"]


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
        int type
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyMemberDescr_Type
    PyTypeObject* Py_TYPE(object)
    bint PyUnicode_IS_ASCII(object)
    const unsigned char* PyUnicode_1BYTE_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_CheckExact(object)
    # Declared here, not cimported: Cython before 3.0.7 declares it without `except NULL`, and a lone surrogate
    # would then be read from a NULL pointer instead of raising.
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    char* PyOS_double_to_string(double, char, int, int, int*) except NULL


# The fields in the order they are read; the offsets of their slots in a RequestRecord.
cdef enum:
    REQUEST_ID, ENDPOINT, KEY_ID, CLIENT_MODEL, BACKEND, UPSTREAM_MODEL, ERROR_TYPE, STATUS, STREAM, INPUT_TOKENS,
    OUTPUT_TOKENS, CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, COST_USD, TTFT_MS, TOTAL_MS, RETRIES, FALLBACKS, N_FIELDS

FIELDS = (
    "request_id", "endpoint", "key_id", "client_model", "backend", "upstream_model", "error_type", "status", "stream",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "ttft_ms", "total_ms",
    "retries", "fallbacks",
)
cdef enum:
    T_OBJECT_EX = 16  # a slot: NULL while unset (then getattr raises the AttributeError)
cdef Py_ssize_t OFFSETS[N_FIELDS]
cdef object RECORD_TYPE = RequestRecord


cdef bint _read_offsets():
    """Whether every field is a plain slot of RequestRecord (else every record is read with getattr)."""
    cdef int index
    cdef PyMemberDescrObject* member
    for index in range(N_FIELDS):
        descriptor = RequestRecord.__dict__.get(FIELDS[index])
        if descriptor is None or Py_TYPE(descriptor) != &PyMemberDescr_Type:
            return False
        member = <PyMemberDescrObject*><PyObject*>descriptor
        if member.d_member.type != T_OBJECT_EX:
            return False
        OFFSETS[index] = member.d_member.offset
    return True


cdef bint SLOTS_READABLE = _read_offsets()


cdef inline object _field(object record, int index, bint slots):
    cdef PyObject* value
    if slots:
        value = (<PyObject**>((<char*><PyObject*>record) + OFFSETS[index]))[0]
        if value is not NULL:
            return <object>value
    return getattr(record, FIELDS[index])


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _grow(Buffer* buffer, Py_ssize_t more) except -1:
    cdef Py_ssize_t capacity = buffer.capacity * 2
    if capacity < buffer.size + more:
        capacity = buffer.size + more + 4096
    cdef char* data = <char*>PyMem_Realloc(buffer.data, capacity)
    if data is NULL:
        raise MemoryError()
    buffer.data = data
    buffer.capacity = capacity
    return 0


cdef inline int _put(Buffer* buffer, const char* text, Py_ssize_t length) except -1:
    if buffer.size + length > buffer.capacity:
        _grow(buffer, length)
    memcpy(buffer.data + buffer.size, text, length)
    buffer.size += length
    return 0


cdef int _put_text(Buffer* buffer, object text) except -1:
    """A str's UTF-8 (cached in the object after its first use); a lone surrogate as the pure twin's
    `encode("utf-8", "backslashreplace")` writes it."""
    cdef Py_ssize_t length
    cdef const char* data
    if not PyUnicode_CheckExact(text):
        text = format(text, "")
    try:
        data = PyUnicode_AsUTF8AndSize(text, &length)
    except UnicodeEncodeError:
        encoded = (<str>text).encode("utf-8", "backslashreplace")
        return _put(buffer, encoded, len(encoded))
    return _put(buffer, data, length)


cdef int _put_json_text(Buffer* buffer, object value) except -1:
    """`dumps_text(value)`: a str with nothing to escape (printable ASCII, no quote or backslash) is copied between
    quotes; anything else goes through dumps_text."""
    cdef Py_ssize_t index, length
    cdef const unsigned char* data
    cdef unsigned char char_
    if PyUnicode_CheckExact(value) and PyUnicode_IS_ASCII(value):
        data = PyUnicode_1BYTE_DATA(value)
        length = PyUnicode_GET_LENGTH(value)
        for index in range(length):
            char_ = data[index]
            if char_ < 0x20 or char_ == 0x22 or char_ == 0x5C:
                break
        else:
            _put(buffer, b'"', 1)
            _put(buffer, <const char*>data, length)
            return _put(buffer, b'"', 1)
    return _put_text(buffer, dumps_text(value))


cdef int _put_int(Buffer* buffer, object value) except -1:
    """An int as `f"{value}"` writes it."""
    cdef char digits[24]
    cdef int overflow = 0, position = 24
    cdef long long number
    cdef unsigned long long magnitude
    if PyLong_CheckExact(value):
        number = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow:
            magnitude = (0ULL - <unsigned long long>number) if number < 0 else <unsigned long long>number
            while True:
                position -= 1
                digits[position] = <char>(48 + magnitude % 10)
                magnitude //= 10
                if magnitude == 0:
                    break
            if number < 0:
                position -= 1
                digits[position] = 45  # '-'
            return _put(buffer, digits + position, 24 - position)
    return _put_text(buffer, format(value, ""))


cdef int _put_fixed(Buffer* buffer, double value, int decimals) except -1:
    """A finite float as `format(value, ".<decimals>f")` writes it (decimals: 2 or 8)."""
    cdef double scale = 100.0 if decimals == 2 else 100000000.0
    cdef unsigned long long unit = 100 if decimals == 2 else 100000000
    cdef double scaled = value * scale
    cdef double fraction
    cdef unsigned long long rounded, whole, part
    cdef char digits[48]
    cdef int position = 48, index
    cdef char* text
    # `scaled` is within half a unit in its last place (< scaled * 2**-53) of the exact value * scale. Away from a
    # half by more than that, both round to the same integer: the correctly rounded result format() writes.
    if not signbit(value) and scaled < 1e15:
        fraction = scaled - floor(scaled)
        if fabs(fraction - 0.5) > scaled * 1e-15 + 1e-9:
            rounded = <unsigned long long>rint(scaled)
            whole = rounded // unit
            part = rounded % unit
            for index in range(decimals):
                position -= 1
                digits[position] = <char>(48 + part % 10)
                part //= 10
            position -= 1
            digits[position] = 46  # '.'
            while True:
                position -= 1
                digits[position] = <char>(48 + whole % 10)
                whole //= 10
                if whole == 0:
                    break
            return _put(buffer, digits + position, 48 - position)
    text = PyOS_double_to_string(value, b"f", decimals, 0, NULL)
    try:
        _put(buffer, text, strlen(text))
    finally:
        PyMem_Free(text)
    return 0


cdef int _put_float(Buffer* buffer, object value, int decimals, bint none_is_null) except -1:
    """`f"{value:.<decimals>f}" if [value is not None and] isfinite(value) else "null"`."""
    cdef double number
    if none_is_null and value is None:
        return _put(buffer, b"null", 4)
    if PyFloat_CheckExact(value):
        number = PyFloat_AS_DOUBLE(value)
        if isfinite(number):
            return _put_fixed(buffer, number, decimals)
        return _put(buffer, b"null", 4)
    if py_isfinite(value):
        return _put_text(buffer, format(value, ".2f" if decimals == 2 else ".8f"))
    return _put(buffer, b"null", 4)


cdef enum:
    LINE_BYTES = 512  # a usage line's usual length, with room to spare


cdef bint _same_texts(tuple key, tuple last):
    """Whether the two keys hold the same texts (or the same objects) field by field: exact str or None only, so
    that equal means what the dict's lookup would find."""
    cdef Py_ssize_t index
    for index in range(6):
        mine = key[index]
        theirs = last[index]
        if mine is theirs:
            continue
        if not (PyUnicode_CheckExact(mine) and PyUnicode_CheckExact(theirs) and <str>mine == <str>theirs):
            return False
    return True


def usage_block(records, str start, dict pieces, piece_of):
    """The records' lines, newlines included (see `_usageline_py.usage_block`)."""
    cdef Buffer buffer
    cdef bint slots
    cdef Py_ssize_t capacity = 4096
    cdef tuple last = None  # the previous record's repeating fields, and their piece
    cdef object piece = None
    if isinstance(records, (list, tuple)):
        capacity = max(capacity, len(records) * LINE_BYTES)  # room for the whole block at once, as a rule
    buffer.data = <char*>PyMem_Malloc(capacity)
    if buffer.data is NULL:
        raise MemoryError()
    buffer.size = 0
    buffer.capacity = capacity
    try:
        for record in records:
            slots = SLOTS_READABLE and type(record) is RECORD_TYPE
            key = (
                _field(record, ENDPOINT, slots),
                _field(record, KEY_ID, slots),
                _field(record, CLIENT_MODEL, slots),
                _field(record, BACKEND, slots),
                _field(record, UPSTREAM_MODEL, slots),
                _field(record, ERROR_TYPE, slots),
            )
            # A batch's records mostly repeat the one before: the same texts give the same piece as the dict would
            # (equal keys), without hashing the key.
            if last is None or not _same_texts(<tuple>key, last):
                piece = pieces.get(key)
                if piece is None:
                    piece = piece_of(key)
                last = <tuple>key
            _put_text(&buffer, start)
            _put_json_text(&buffer, _field(record, REQUEST_ID, slots))
            _put(&buffer, b",", 1)
            _put_text(&buffer, piece)
            _put(&buffer, b',"status":', 10)
            _put_int(&buffer, _field(record, STATUS, slots))
            if PyObject_IsTrue(_field(record, STREAM, slots)):
                _put(&buffer, b',"stream":true,"input_tokens":', 30)
            else:
                _put(&buffer, b',"stream":false,"input_tokens":', 31)
            _put_int(&buffer, _field(record, INPUT_TOKENS, slots))
            _put(&buffer, b',"output_tokens":', 17)
            _put_int(&buffer, _field(record, OUTPUT_TOKENS, slots))
            _put(&buffer, b',"cache_read_tokens":', 21)
            _put_int(&buffer, _field(record, CACHE_READ_TOKENS, slots))
            _put(&buffer, b',"cache_write_tokens":', 22)
            _put_int(&buffer, _field(record, CACHE_WRITE_TOKENS, slots))
            _put(&buffer, b',"cost_usd":', 12)
            _put_float(&buffer, _field(record, COST_USD, slots), 8, True)
            _put(&buffer, b',"ttft_ms":', 11)
            _put_float(&buffer, _field(record, TTFT_MS, slots), 2, True)
            _put(&buffer, b',"total_ms":', 12)
            _put_float(&buffer, _field(record, TOTAL_MS, slots), 2, False)
            _put(&buffer, b',"retries":', 11)
            _put_int(&buffer, _field(record, RETRIES, slots))
            _put(&buffer, b',"fallbacks":', 13)
            _put_int(&buffer, _field(record, FALLBACKS, slots))
            _put(&buffer, b"}\n", 2)
        return PyBytes_FromStringAndSize(buffer.data, buffer.size)
    finally:
        PyMem_Free(buffer.data)
