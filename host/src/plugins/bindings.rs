//! Host bindings for `helio:governance@0.1.0`, generated from `wit/`.
//! Generated types stay inside `plugins`; the rest of Helio sees
//! [`super::Verdict`] and friends.

wasmtime::component::bindgen!({
    path: "../wit",
    // The widest stage world: a plain policy stage (no state import) links
    // against it too.
    world: "stateful-policy-stage",
    imports: { default: trappable },
    with: {
        "helio:governance/types.tool-call": super::call::ToolCall,
    },
});
