# attnscope, on a fresh Debian 12 machine:
#   make demo   install dependencies, build (Release), run configs/minmax.yaml, render it
#   make test   install dependencies, build, run the test suite (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
RUN   ?= runs/minmax

.PHONY: all deps build demo demo-chemberta test bench clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./$(BUILD)/cli/attnscope train configs/minmax.yaml --out $(RUN) --force
	./$(BUILD)/cli/attnscope render $(RUN)
	@echo "results: $(RUN)/ (config.yaml, train.log, metrics.jsonl, mechanism.json, checkpoints/, attention.h5, figures/)"
	@echo "per-head attention metrics: ./$(BUILD)/cli/attnscope metrics $(RUN)"
	@echo "report (open in a browser, works offline): $(abspath $(RUN))/report.html"
	@echo "explore it live (type '3 max 5', see both heads): ./$(BUILD)/cli/attnscope serve $(RUN)   then open http://127.0.0.1:8080/"

# ChemBERTa end to end on the small CPU preset: masked-LM pretraining on the shipped 5k ZINC corpus
# (ESOL's molecules excluded), ESOL fine-tuning from it, both with attention recorded, then the
# fine-tuning run's figures and report (measured: 6 min 16 s after the build on a 2-core VM)
CHEM_PRE ?= runs/demo-pretrain
CHEM_RUN ?= runs/demo-esol
demo-chemberta: build
	./$(BUILD)/cli/attnscope pretrain configs/chemberta-pretrain.yaml --set train.epochs=4 --out $(CHEM_PRE) --force
	./$(BUILD)/cli/attnscope train configs/chemberta-esol.yaml --set model.pretrained=$(CHEM_PRE) train.epochs=15 \
	  --out $(CHEM_RUN) --force
	./$(BUILD)/cli/attnscope render $(CHEM_RUN)
	@echo "pretraining run: $(CHEM_PRE)/  fine-tuning run: $(CHEM_RUN)/ (test_metrics.json, figures/)"
	@echo "report (open in a browser, works offline): $(abspath $(CHEM_RUN))/report.html"
	@echo "explore it live (type a SMILES, pick a checkpoint): ./$(BUILD)/cli/attnscope serve $(CHEM_RUN)   then open http://127.0.0.1:8080/"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

bench: build
	./$(BUILD)/bench/minmax_bench
	./$(BUILD)/bench/render_bench --run $(RUN)

clean:
	rm -rf $(BUILD)

# libFuzzer (clang-14, ASan + UBSan) on the safetensors and pickle readers, the tokenizers, config.json,
# attention.h5 (structure-aware), the molecule CSV reader and serve's request framing and JSON,
# FUZZ_SECONDS each, in $(FUZZ_BUILD) (never touches $(BUILD)). New corpus entries stay in
# $(FUZZ_BUILD)/corpus/<target>; a crash, leak, out-of-memory or timeout input is written to
# fuzz/regressions/<target>/, which tests/fuzz_regression_test replays in `make test`.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_safetensors fuzz_torch_pickle fuzz_bpe fuzz_wordpiece fuzz_smiles fuzz_hf_config fuzz_attention_h5 fuzz_molecule_csv fuzz_request_json
FUZZ_FLAGS   ?= -timeout=30

.PHONY: fuzz
fuzz:
	cmake -S fuzz -B $(FUZZ_BUILD) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t fuzz/regressions/$$t; \
	  dict=fuzz/$${t#fuzz_}.dict; [ -f $$dict ] && dict=-dict=$$dict || dict=; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  ./$(FUZZ_BUILD)/$$t $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t $$dict -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=fuzz/regressions/$$t/ -print_final_stats=1 $(FUZZ_FLAGS) \
	    > $(FUZZ_BUILD)/$$t.log 2>&1 || failed="$$failed $$t"; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|average_exec_per_sec' $(FUZZ_BUILD)/$$t.log || tail -n 30 $(FUZZ_BUILD)/$$t.log; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: found a problem in:$$failed (logs: $(FUZZ_BUILD)/<target>.log, inputs: fuzz/regressions/)"; exit 1; fi
