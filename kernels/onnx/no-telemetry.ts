/**
 * onnxruntime (1.30, posix builds too) starts a usage-telemetry system with its first session:
 * it reads /etc/machine-id, keeps a device id and an event store under
 * ~/.cache/Microsoft/DeveloperTools/.onnxruntime/, writes /tmp/mat-debug-<pid>.log and uploads
 * over HTTPS when it finds a CA bundle; and it dies with SIGSEGV while that session is created
 * when the process's command line is long (~100 KB, as 2,000 --lora-modules make it). An
 * inference server makes no call home, so the switch onnxruntime reads (ORT_DISABLE_TELEMETRY,
 * read when its environment is created, i.e. at the first session) is set before that, whatever
 * the caller's environment says. Import this module before `onnxruntime-node`, and on the main
 * thread before starting a worker that loads it: a worker's process.env is its own copy, which
 * onnxruntime's native getenv never sees (the process's environment is the main thread's).
 */
process.env.ORT_DISABLE_TELEMETRY = '1';
