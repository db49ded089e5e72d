// The files of a Hugging Face PEFT adapter folder, the only interchange format for adapters. Pickled
// weights run code when loaded, so they are named here to be refused, never read.
export const PEFT_CONFIG_FILE = "adapter_config.json";
export const PEFT_WEIGHTS_FILE = "adapter_model.safetensors";
export const PEFT_PICKLE_FILES = ["adapter_model.bin", "adapter_model.pt", "adapter_model.pth"] as const;
