export async function resolve(specifier, context, next) {
  if (specifier.startsWith('helio:governance/')) {
    return { url: new URL('./host.mjs', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
