//! The daemon's YAML config from arbitrary text: parsing and validation
//! never panic, and a config that validates writes back to YAML that
//! parses to the same config.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = hydra::Config::parse(text) else {
        return;
    };
    if config.validate().is_ok() {
        let again = hydra::Config::parse(&config.to_yaml().unwrap()).unwrap();
        assert_eq!(again.to_yaml().unwrap(), config.to_yaml().unwrap());
    }
});
