"""Run one vLLM generation in a fresh process (vLLM spawns workers and needs a main guard).

python tests/vllm_driver.py MODEL_DIR OUT_JSON SPEC_JSON
(SPEC_JSON: a file holding {"prompts": [...], "sampling": {...}, "engine": {...}})
"""

import json
import sys


def main():
    from sublim import script
    from sublim.generation import Sampling, generate

    def run():
        model, out, spec = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
        texts, stats = generate("vllm", model, spec["prompts"], Sampling(**spec["sampling"]), engine=spec["engine"])
        with open(out, "w") as f:
            json.dump({"texts": texts, "stats": stats}, f)

    script.main(run)


if __name__ == "__main__":
    main()
