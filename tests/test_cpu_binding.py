"""vLLM-CPU's thread binding under Snakemake's thread variables (no vLLM needed).

Snakemake exports MKL_NUM_THREADS = the rule's threads; vLLM-CPU's own binding pins its
worker to one core fewer. The mismatch made the generate rule 7-10x slower than the same
command in a shell (benchmarks/vllm_cpu_threads.py). The workflow binds the job's cores and
sizes every thread pool to them.
"""

import pytest

from sublim.errors import SublimError
from sublim.generation import cpu_thread_binding

SNAKEMAKE = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def test_binds_the_jobs_cores_and_sizes_every_pool_to_them():
    env = cpu_thread_binding(2, SNAKEMAKE, [0, 1])
    assert env == {"VLLM_CPU_OMP_THREADS_BIND": "0,1", **SNAKEMAKE}
    # a Slurm job allowed CPUs 4-7 asking for 16 threads: its 4 cores, pools of 4
    env = cpu_thread_binding(16, {}, [4, 5, 6, 7])
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "4,5,6,7"
    assert env["MKL_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "4"
    assert cpu_thread_binding(None, {}, [0, 1, 2])["VLLM_CPU_OMP_THREADS_BIND"] == "0,1,2"


def test_jobs_sharing_a_machine_are_not_all_pinned_to_its_first_cores():
    # local `snakemake -c16` with 4-thread jobs: every job sees all 16 cores
    env = cpu_thread_binding(4, {}, list(range(16)))
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["MKL_NUM_THREADS"] == env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "4"


def test_a_users_binding_is_kept():
    env = cpu_thread_binding(2, {**SNAKEMAKE, "VLLM_CPU_OMP_THREADS_BIND": "0-3,8"}, [0, 1])
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env  # theirs stays
    assert env["MKL_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "5"
    env = cpu_thread_binding(2, {"VLLM_CPU_OMP_THREADS_BIND": "0-3|4-7"}, [0, 1])  # rank 0's list
    assert env["MKL_NUM_THREADS"] == "4"
    assert cpu_thread_binding(2, {"VLLM_CPU_OMP_THREADS_BIND": "auto"}, [0, 1]) == {}
    assert cpu_thread_binding(2, {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}, [0, 1]) == {}


@pytest.mark.parametrize("bad", ["all", "0-x", "8-3", ","])
def test_a_bad_user_binding_is_one_line(bad):
    with pytest.raises(SublimError, match="VLLM_CPU_OMP_THREADS_BIND=.* is not a core list"):
        cpu_thread_binding(2, {"VLLM_CPU_OMP_THREADS_BIND": bad}, [0, 1])
