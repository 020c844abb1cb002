"""A 16-lane register for Numba kernels: ``Lanes``, with load, store, zeros and a broadcast multiply-add.

Why this exists
    LLVM's loop vectorizer decides on its own how wide a vector is and how many it interleaves.  For a
    loop over d < D it picks a 16-lane body unrolled twice (32 values per step), so a loop of D = 16
    channels (DCNv3/DCNv4's usual group width) never enters its vector body and runs in the 4-lane
    epilogue; and an accumulator array written back on every step (acc[d] += ...) goes through memory,
    each step waiting on the store of the one before.  A fixed ``for d in range(16)`` does not help: it
    is unrolled into scalar code, because LLVM cannot prove that Numba arrays do not overlap.
    ``Lanes`` states the vector explicitly: a Numba value that lowers to one LLVM ``<16 x float>``
    (``<16 x double>`` for float64), which LLVM keeps in one AVX-512 register (two for float64, or two
    and four AVX2 registers) across a whole loop.  The kernels still read as the formula:
        acc = zeros(x)                                   # 16 running sums, in a register
        for p in range(P):
            acc = fma(acc, weight[p], load(x, start[p]))  # acc[l] += weight[p] · x[start[p] + l]
        store(y, start_y, acc)                           # y[start_y + l] = acc[l]

Math
    load(a, i)[l] = a[i + l],   store(a, i, v): a[i + l] = v[l],   fma(acc, s, v)[l] = acc[l] + s·v[l]
    (fused, one rounding), for the lanes l < LANES;   store_lanes(a, i, v, lo, hi): a[i + l] = v[l] for
    lo ≤ l < hi only (a masked store: the other lanes' memory is not touched, not even rewritten).
Shapes
    ``a`` is a 1-D C-contiguous array (a flat view of a kernel's array); lanes hold its dtype.
Cost
    one vector instruction per call (two for float64 with AVX-512).
Parallel
    none: each call is a single instruction inside a caller's loop.
Versions
    v1 only.  Plain Python (or Numba with these functions replaced by a loop over l) computes the same.
Caveats
    No bounds checks: the caller guarantees i + LANES ≤ len(a), as it does for its own indexing.
    ``fma`` rounds once where a·b + c rounds twice (``contract`` fast-math allows the same elsewhere).
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

LANES = 16


class Lanes(types.Type):
    """The Numba type of LANES values of one dtype held together in a vector register."""

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(name=f"Lanes{LANES}({dtype})")


@register_model(Lanes)
class LanesModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), LANES))


def _flat_array(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and isinstance(a.dtype, types.Float)


def _vector_pointer(context, builder, array_type, array, start):
    """Address of a[start], typed as a pointer to a vector of LANES elements."""
    data = context.make_array(array_type)(context, builder, array).data
    vector = context.get_value_type(Lanes(array_type.dtype))
    return builder.bitcast(builder.gep(data, [start]), vector.as_pointer())


@intrinsic
def load(typingctx, a, i):
    """The LANES values a[i], a[i + 1], …, a[i + LANES − 1]."""
    if not (_flat_array(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load(pointer, align=sig.args[0].dtype.bitwidth // 8)   # unaligned is fine
    return Lanes(a.dtype)(a, i), codegen


@intrinsic
def store(typingctx, a, i, v):
    """a[i + l] = v[l] for l < LANES."""
    if not (_flat_array(a) and isinstance(i, types.Integer) and v == Lanes(a.dtype)):
        return None

    def codegen(context, builder, sig, args):
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], pointer, align=sig.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def zeros(typingctx, a):
    """LANES zeros of a's dtype (a only gives the dtype)."""
    if not _flat_array(a):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(sig.return_type), None)
    return Lanes(a.dtype)(a), codegen


@intrinsic
def fma(typingctx, acc, s, v):
    """acc + s·v with the scalar s broadcast to every lane, one fused multiply-add."""
    if not (isinstance(acc, Lanes) and v == acc and isinstance(s, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(sig.return_type)
        scalar = context.cast(builder, args[1], sig.args[1], sig.return_type.dtype)
        lane0 = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
        broadcast = builder.shuffle_vector(lane0, lane0, ir.Constant(ir.VectorType(ir.IntType(32), LANES), None))
        suffix = f"v{LANES}f{sig.return_type.dtype.bitwidth}"
        llvm_fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                                  f"llvm.fma.{suffix}")
        return builder.call(llvm_fma, [broadcast, args[2], args[0]])
    return acc(acc, s, v), codegen


@intrinsic
def store_lanes(typingctx, a, i, v, lo, hi):
    """a[i + l] = v[l] for lo ≤ l < hi, one masked store (AVX-512: a ``vmovups`` under a lane mask).
    Memory outside those lanes is neither read nor written, so a vector that straddles the end of a row
    (or of the array, or another thread's part of it) can be stored piece by piece.  The caller
    guarantees 0 ≤ lo and hi ≤ LANES, and that i + l is inside a for lo ≤ l < hi."""
    if not (_flat_array(a) and isinstance(i, types.Integer) and v == Lanes(a.dtype)
            and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        i64 = ir.IntType(64)
        lane_numbers = ir.Constant(ir.VectorType(i64, LANES), [ir.Constant(i64, lane) for lane in range(LANES)])

        def splat(value, value_type):
            value = context.cast(builder, value, value_type, types.int64)
            lane0 = builder.insert_element(ir.Constant(ir.VectorType(i64, LANES), ir.Undefined), value,
                                           ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(lane0, lane0, ir.Constant(ir.VectorType(ir.IntType(32), LANES), None))
        mask = builder.and_(builder.icmp_signed(">=", lane_numbers, splat(args[3], sig.args[3])),
                            builder.icmp_signed("<", lane_numbers, splat(args[4], sig.args[4])))
        vector = context.get_value_type(Lanes(sig.args[0].dtype))
        bits = sig.args[0].dtype.bitwidth
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vector, vector.as_pointer(), ir.IntType(32), mask.type]),
            f"llvm.masked.store.v{LANES}f{bits}.p0")
        builder.call(masked_store, [args[2], pointer, ir.Constant(ir.IntType(32), bits // 8), mask])
        return context.get_dummy_value()
    return types.none(a, i, v, lo, hi), codegen
