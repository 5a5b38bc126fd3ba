"""The precision policy (simclr_core.precision): which CPU gets bf16 autocast, decided from the instruction sets the
CPU reports, tested with the cpuinfo of real CPU kinds written to a file; device spellings; Precision's helpers;
and the callers that take a device (features, the experiments' command line)."""

import pytest
import torch
import torch.nn as nn

from simclr_core import precision as pm
from simclr_core.eval.features import extract_features
from simclr_core.precision import (CpuInfo, Precision, as_precision, cpu_has_fast_bf16, cpu_kind, parse_device,
                                   precision_for, read_cpu_info, resolve_device)

BASE = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm"
# /proc/cpuinfo flag lines of real CPU kinds (abridged to the ISA part)
CPUS = {
    "avx2 only (Zen 2, Haswell)": f"{BASE} pni ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c bmi1 avx2 bmi2",
    "avx-512 without bf16 (Cascade Lake Xeon)": f"{BASE} sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw "
                                                "avx512vl avx512_vnni",
    "avx512-bf16 (Zen 4, Cooper Lake)": f"{BASE} sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl "
                                        "avx512_vnni avx512_bf16",
    "amx (Sapphire Rapids)": f"{BASE} sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni "
                             "avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8",
}
# the policy table, written out: CPU kind -> (cpu_kind, bf16 autocast)
EXPECTED = {
    "avx2 only (Zen 2, Haswell)": ("avx2", False),
    "avx-512 without bf16 (Cascade Lake Xeon)": ("avx512", False),
    "avx512-bf16 (Zen 4, Cooper Lake)": ("avx512_bf16", True),
    "amx (Sapphire Rapids)": ("amx", True),
}
GRAVITON3 = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
             "sha3 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16")


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """fake_cpu(flags, arch, capability, env) -> the CpuInfo that read_cpu_info() now returns everywhere."""
    def make(flags, arch="x86_64", capability="AVX512", env=None, key="flags"):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: test\n{key}\t\t: {flags}\n\nprocessor\t: 1\n{key}\t: {flags}\n")
        monkeypatch.setattr(pm.platform, "machine", lambda: arch)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        real = read_cpu_info
        monkeypatch.setattr(pm, "read_cpu_info", lambda *a, **k: real(str(path), env or {}, "Linux"))
        return pm.read_cpu_info()
    return make


@pytest.mark.parametrize("name", list(CPUS))
def test_policy_follows_the_isa_the_cpu_reports(fake_cpu, name):
    kind, bf16 = EXPECTED[name]
    info = fake_cpu(CPUS[name])
    assert cpu_kind(info) == kind
    assert cpu_has_fast_bf16() is bf16
    p = precision_for("cpu")
    assert p.dtype is (torch.bfloat16 if bf16 else None) and p.channels_last and p.device == torch.device("cpu")
    assert precision_for("cpu", amp=False).dtype is None


def test_avx512_without_bf16_stays_float32_even_though_onednn_says_supported(fake_cpu, monkeypatch):
    """oneDNN reports bf16 'supported' on any AVX-512 CPU (it emulates it): its answer must not decide."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    fake_cpu(CPUS["avx-512 without bf16 (Cascade Lake Xeon)"])
    assert precision_for("cpu").dtype is None


@pytest.mark.parametrize("env, capability, kind", [
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "AVX512", "avx512"),  # oneDNN capped below bf16: emulated
    ({"DNNL_MAX_CPU_ISA": "avx2"}, "AVX512", "avx512"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "AVX512", "avx512_bf16"),  # AMX off, bf16 instructions still on
    ({}, "AVX2", "avx2"),  # ATEN_CPU_CAPABILITY=avx2: torch's kernels without AVX-512
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, "AVX512", "amx"),
])
def test_caps_on_the_isa_count(fake_cpu, env, capability, kind):
    assert cpu_kind(fake_cpu(CPUS["amx (Sapphire Rapids)"], capability=capability, env=env)) == kind


@pytest.mark.parametrize("flags, arch, key", [
    (GRAVITON3, "aarch64", "Features"),  # bf16 instructions, but not a CPU the policy knows to be faster in bf16
    (CPUS["amx (Sapphire Rapids)"], "arm64", "flags"),  # flags that do not belong to the architecture: arch decides
    ("", "x86_64", "flags"),
])
def test_other_architectures_and_empty_flags_get_float32(fake_cpu, flags, arch, key):
    fake_cpu(flags, arch=arch, key=key)
    assert cpu_kind(pm.read_cpu_info()) == "other" and precision_for("cpu").dtype is None


def test_unreadable_cpuinfo_and_unknown_systems_give_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(pm.platform, "machine", lambda: "x86_64")
    for info in (read_cpu_info(str(tmp_path / "missing"), {}, "Linux"), read_cpu_info(str(tmp_path), {}, "Linux"),
                 read_cpu_info("/proc/cpuinfo", {}, "Windows")):
        assert info.flags == frozenset() and info.source == "none"
        assert cpu_kind(info) == "other" and not cpu_has_fast_bf16(info)
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00\nflags : avx512f avx512_bf16\n\xff")  # garbage around a flags line
    assert read_cpu_info(str(tmp_path / "binary"), {}, "Linux").flags >= {"avx512f", "avx512bf16"}


def test_macos_reads_sysctl(monkeypatch):
    class Done:
        stdout = "FPU VME SSE4.2 AVX1.0 AVX2 AVX512F AVX512DQ AVX512BW AVX512VL AVX512VNNI\n"
    monkeypatch.setattr(pm.subprocess, "run", lambda *a, **k: Done())
    monkeypatch.setattr(pm.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    info = read_cpu_info(env={}, system="Darwin")
    assert info.source == "sysctl" and cpu_kind(info) == "avx512"  # an Ice Lake Mac: no bf16 instructions

    def fails(*a, **k):
        raise FileNotFoundError("sysctl")
    monkeypatch.setattr(pm.subprocess, "run", fails)
    assert cpu_kind(read_cpu_info(env={}, system="Darwin")) == "other"


def test_this_machine_agrees_with_its_cpuinfo():
    info = read_cpu_info()
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    reported = "avx512_bf16" in text.split() or "amx_bf16" in text.split()
    assert cpu_has_fast_bf16() is (reported and info.aten_capability.startswith("AVX512") and info.onednn_max_isa
                                   not in pm._ONEDNN_NO_BF16 and "avx512f" in text.split())


@pytest.mark.parametrize("spec, canonical", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"),
                                             ("mps", "mps"), (torch.device("cpu"), "cpu")])
def test_parse_device_accepts(spec, canonical):
    assert parse_device(spec) == canonical


@pytest.mark.parametrize("spec", ["", " cpu", "CPU", "cuda:", "cuda:abc", "cuda:-1", "tpu", "cpu:0:1", "cuda:99999",
                                  None, 3, ["cpu"]])
def test_parse_device_refuses_naming_the_value(spec):
    with pytest.raises(ValueError, match="device must be") as err:
        parse_device(spec)
    assert repr(spec) in str(err.value) and "'auto', 'cpu', 'cuda'" in str(err.value)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="'tpu'"):
        precision_for("tpu")


def test_precision_helpers():
    p = Precision(torch.device("cpu"), torch.bfloat16, True)
    assert p.float32() == Precision(torch.device("cpu"), None, True)
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert p.hold(x) is x  # the CPU reads the dataset in place
    assert p.inputs(x.float()).is_contiguous(memory_format=torch.channels_last)
    assert Precision(torch.device("cpu")).inputs(x) is x
    with p.autocast():
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="torch.device"):
        Precision("cpu")
    with pytest.raises(ValueError, match="dtype"):
        Precision(torch.device("cpu"), torch.float64)
    with pytest.raises(ValueError, match="amp"):
        precision_for("cpu", amp="yes")


def test_as_precision(monkeypatch):
    monkeypatch.setattr(pm, "cpu_has_fast_bf16", lambda info=None: True)
    p = Precision(torch.device("cpu"))
    assert as_precision(p) is p
    assert as_precision("cpu") == precision_for("cpu") and as_precision("cpu").dtype is torch.bfloat16
    assert as_precision(None, nn.Linear(2, 2)) == Precision(torch.device("cpu"))
    with pytest.raises(ValueError, match="Precision or a device"):
        as_precision(3.5)


def _encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_features_from_a_device_name_follow_its_policy(monkeypatch):
    """A device name means that device's policy (bf16 where native), not a silent float32."""
    monkeypatch.setattr(pm, "cpu_has_fast_bf16", lambda info=None: True)
    enc, x = _encoder(), torch.randint(0, 256, (16, 1, 12, 12), dtype=torch.uint8)
    by_name = extract_features(enc, x, 8, "cpu")
    assert torch.equal(by_name, extract_features(enc, x, 8, Precision(torch.device("cpu"), torch.bfloat16, True)))
    fp32 = extract_features(enc, x, 8, Precision(torch.device("cpu")))
    assert not torch.equal(by_name, fp32) and torch.allclose(by_name, fp32, rtol=0.05, atol=0.05)
    monkeypatch.setattr(pm, "cpu_has_fast_bf16", lambda info=None: False)
    assert torch.equal(extract_features(enc, x, 8, "cpu"), extract_features(enc, x, 8, Precision(torch.device("cpu"), None, True)))


def test_features_refuse_an_encoder_on_another_device():
    with pytest.raises(ValueError, match="move it first"):
        extract_features(_encoder().to("meta"), torch.zeros(2, 1, 8, 8, dtype=torch.uint8), 2, "cpu")


def test_experiments_cli_checks_the_device(capsys):
    from simclr_core import experiments as ex

    for bad in ("tpu", "cuda:x"):
        with pytest.raises(SystemExit):
            ex.main(["fig5", "--device", bad])
        assert "device must be" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            ex.main(["fig5", "--device", "cuda"])
        assert "CUDA is not available" in capsys.readouterr().err
