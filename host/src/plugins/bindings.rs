//! Host bindings for `helio:governance@0.1.0`, generated from `wit/`.
//! Generated types stay inside `plugins`; the rest of Helio sees
//! [`super::Verdict`] and friends.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy-stage",
    imports: { default: trappable },
    with: {
        "helio:governance/types.tool-call": super::call::ToolCall,
    },
});
