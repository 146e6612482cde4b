"""Train one supervised fastText model in a fresh interpreter: `python -m curate.fasttext_train ARGS_JSON`.

Kept free of other imports on purpose: fasttext-numpy2 intermittently fails with "Encountered
NaN" when it trains in a process that has already allocated and freed a lot of memory (reproduced
in this project: after a few trainings in one process, or after loading other native libraries,
every training fails; in a fresh interpreter it never did). ARGS_JSON: {"input", "output", "options"}.
Exit code 0 on success; on failure the error is printed as one JSON line on stdout.
"""

import json
import sys


def main() -> int:
    request = json.loads(sys.argv[1])
    import fasttext

    try:
        model = fasttext.train_supervised(input=request["input"], **request["options"])
    except RuntimeError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    model.save_model(request["output"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
