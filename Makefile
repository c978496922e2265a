# Developer tasks for rolecall. Tools are pinned in tools/go.mod.
TOOL := go tool -modfile=tools/go.mod

.PHONY: help generate lint test bench bench-large bench-server ci run

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

generate: ## regenerate gen/ from proto/
	$(TOOL) buf generate

lint: ## go vet, staticcheck, buf lint, gofmt
	go vet ./...
	cd deploy && go vet ./...
	$(TOOL) staticcheck ./...
	cd deploy && go tool -modfile=../tools/go.mod staticcheck ./...
	$(TOOL) buf lint
	@test -z "$$(git ls-files '*.go' | grep -v '^gen/' | xargs gofmt -l)" || (echo "gofmt needed:"; git ls-files '*.go' | grep -v '^gen/' | xargs gofmt -l; exit 1)

test: ## run the tests with the race detector, the main module's and deploy/'s
	go test -race ./...
	cd deploy && go test -race ./...

bench: ## run the go test benchmarks (policies up to 100,000 subjects)
	go test -run '^$$' -bench . -benchmem ./...

bench-large: ## the scale benchmarks with 1,000,000 subjects too (several GB, minutes)
	ROLECALL_BENCH_1M=1 go test -run '^$$' -bench 'AtScale|LoadSnapshot|Compile' -benchmem -timeout 30m ./pdp

bench-server: ## rolecall bench against a fresh server: TCP and Unix socket, concurrency 1, 16, 64
	bash scripts/bench-server.sh

ci: ## run what CI runs
	bash .ci/run

run: ## serve the example policy
	go run ./cmd/rolecall serve --policy examples/bookstore.yaml
