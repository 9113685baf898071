/** The synthetic model and adapter generator: one import for specs, in-memory weights and files. */
export * from './synthetic-files.js';
export * from './synthetic-spec.js';
export * from './synthetic-tokenizer.js';
export * from './synthetic-weights.js';
