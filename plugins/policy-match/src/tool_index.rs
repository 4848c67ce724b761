//! Which items of an ordered list (rules, budget contributors) a tool name
//! can select, so evaluating a call tests only those instead of walking the
//! whole list. Built once at configure, in time linear in the items.
//!
//! Exact names are one hash lookup. Patterns keep glob-match's semantics by
//! being matched with it, once per distinct tool name: the ordered list of
//! candidates a name selects is memoized. Agents choose tool names, so the
//! memo is bounded; past the bound a name's list is computed per call
//! (correct, and no dearer than walking the patterns was). Items with no
//! tool condition are candidates for every name and are merged in at
//! iteration rather than copied into every memoized list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::Glob;

/// Distinct tool names whose candidates are remembered.
const MEMO_TOOLS: usize = 4096;
/// Bytes the remembered lists and names may take (an estimate per entry:
/// name, ids and the map's and `Rc`'s own words).
const MEMO_BYTES: usize = 1 << 20;
const MEMO_ENTRY_OVERHEAD: usize = 64;

/// The items of a list by the tool names their tool condition matches.
/// Item order is priority: candidates come out in it.
#[derive(Debug)]
pub struct ToolIndex {
    /// Items whose condition is an exact name, ascending per name.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Items whose condition is a pattern, by the literal prefix every name
    /// it matches starts with (often empty), ascending per prefix.
    patterns: HashMap<Box<[u8]>, Vec<Pattern>>,
    /// The longest key of `patterns`: longer prefixes of a name need no look-up.
    longest_prefix: usize,
    /// Items with no tool condition, ascending.
    everywhere: Vec<u32>,
    /// Exact and pattern items a name selects (not `everywhere`), ascending.
    memo: RefCell<Memo>,
    limits: MemoLimits,
}

#[derive(Debug)]
struct Pattern {
    item: u32,
    glob: Box<str>,
}

#[derive(Debug, Default)]
struct Memo {
    lists: HashMap<Box<str>, Rc<[u32]>>,
    bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct MemoLimits {
    tools: usize,
    bytes: usize,
}

impl ToolIndex {
    /// Indexes items by their tool condition (none: every tool), in order.
    pub fn new<'a>(tools: impl IntoIterator<Item = Option<&'a Glob>>) -> ToolIndex {
        ToolIndex::with_limits(
            tools,
            MemoLimits {
                tools: MEMO_TOOLS,
                bytes: MEMO_BYTES,
            },
        )
    }

    fn with_limits<'a>(
        tools: impl IntoIterator<Item = Option<&'a Glob>>,
        limits: MemoLimits,
    ) -> ToolIndex {
        let mut index = ToolIndex {
            exact: HashMap::new(),
            patterns: HashMap::new(),
            longest_prefix: 0,
            everywhere: Vec::new(),
            memo: RefCell::default(),
            limits,
        };
        for (item, tool) in tools.into_iter().enumerate() {
            // A configuration is at most a few MiB of text: far fewer items.
            let item = u32::try_from(item).expect("fewer than 2^32 items");
            match tool {
                None => index.everywhere.push(item),
                Some(Glob::Literal(name)) => index
                    .exact
                    .entry(name.as_str().into())
                    .or_default()
                    .push(item),
                Some(Glob::Pattern(pattern)) => {
                    let prefix = literal_prefix(pattern);
                    index.longest_prefix = index.longest_prefix.max(prefix.len());
                    index
                        .patterns
                        .entry(prefix.into())
                        .or_default()
                        .push(Pattern {
                            item,
                            glob: pattern.as_str().into(),
                        });
                }
            }
        }
        index
    }

    /// The items whose tool condition matches `tool`, or that have none,
    /// in item order.
    pub fn candidates(&self, tool: &str) -> Candidates<'_> {
        let selected = if self.patterns.is_empty() {
            // Nothing to match: the exact list is the answer as it stands.
            Selected::Exact(self.exact.get(tool).map_or(&[], Vec::as_slice))
        } else {
            Selected::Memo(self.selected(tool))
        };
        Candidates {
            selected,
            next_selected: 0,
            everywhere: &self.everywhere,
            next_everywhere: 0,
        }
    }

    fn selected(&self, tool: &str) -> Rc<[u32]> {
        if let Some(list) = self.memo.borrow().lists.get(tool) {
            return Rc::clone(list);
        }
        let list: Rc<[u32]> = self.select(tool).into();
        let mut memo = self.memo.borrow_mut();
        let cost = tool.len() + list.len() * size_of::<u32>() + MEMO_ENTRY_OVERHEAD;
        if memo.lists.len() < self.limits.tools && memo.bytes + cost <= self.limits.bytes {
            memo.bytes += cost;
            memo.lists.insert(tool.into(), Rc::clone(&list));
        }
        list
    }

    /// The exact and pattern items `tool` selects, ascending.
    fn select(&self, tool: &str) -> Vec<u32> {
        let mut items = self.exact.get(tool).cloned().unwrap_or_default();
        let name = tool.as_bytes();
        for len in 0..=name.len().min(self.longest_prefix) {
            if let Some(patterns) = self.patterns.get(&name[..len]) {
                items.extend(
                    patterns
                        .iter()
                        .filter(|pattern| glob_match::glob_match(&pattern.glob, tool))
                        .map(|pattern| pattern.item),
                );
            }
        }
        // Each item is in one list only: sorting merges them.
        items.sort_unstable();
        items
    }
}

/// The bytes every name `pattern` matches begins with: glob-match compares
/// a pattern's leading plain bytes with the name's one by one and fails at
/// the first difference, before any wildcard could backtrack. A leading `!`
/// negates the whole pattern, so such a pattern has none. Stops short at
/// `/` too, which glob-match compares as a path separator.
fn literal_prefix(pattern: &str) -> &[u8] {
    let bytes = pattern.as_bytes();
    if bytes.first() == Some(&b'!') {
        return &[];
    }
    let end = bytes
        .iter()
        .position(|b| {
            matches!(
                b,
                b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b',' | b'\\' | b'/'
            )
        })
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// Candidate items for one tool name, in item order (see
/// [`ToolIndex::candidates`]).
#[derive(Debug)]
pub struct Candidates<'a> {
    selected: Selected<'a>,
    next_selected: usize,
    everywhere: &'a [u32],
    next_everywhere: usize,
}

#[derive(Debug)]
enum Selected<'a> {
    Exact(&'a [u32]),
    Memo(Rc<[u32]>),
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let selected = match &self.selected {
            Selected::Exact(list) => list,
            Selected::Memo(list) => &list[..],
        };
        // Two ascending lists with no item in common: merge them.
        let a = selected.get(self.next_selected).copied();
        let b = self.everywhere.get(self.next_everywhere).copied();
        let item = match (a, b) {
            (Some(a), Some(b)) if a < b => {
                self.next_selected += 1;
                a
            }
            (Some(a), None) => {
                self.next_selected += 1;
                a
            }
            (_, Some(b)) => {
                self.next_everywhere += 1;
                b
            }
            (None, None) => return None,
        };
        Some(item as usize)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{literal_prefix, MemoLimits, ToolIndex};
    use crate::Glob;

    fn globs(texts: &[Option<&str>]) -> Vec<Option<Glob>> {
        texts
            .iter()
            .map(|t| t.map(|t| Glob::compile(t).unwrap()))
            .collect()
    }

    /// What a walk of every item finds.
    fn walk(globs: &[Option<Glob>], tool: &str) -> Vec<usize> {
        (0..globs.len())
            .filter(|&i| globs[i].as_ref().is_none_or(|g| g.matches(tool)))
            .collect()
    }

    #[test]
    fn candidates_come_in_item_order() {
        let items = globs(&[
            Some("send_*"),
            None,
            Some("send_email"),
            Some("*"),
            Some("!send_*"),
            Some("send_email"),
            None,
            Some("{send,read}_email"),
            Some("send_email_*"),
        ]);
        let index = ToolIndex::new(items.iter().map(Option::as_ref));
        let cases: &[(&str, &[usize])] = &[
            ("send_email", &[0, 1, 2, 3, 5, 6, 7]),
            ("read_email", &[1, 3, 4, 6, 7]),
            ("send_", &[0, 1, 3, 6]),
            ("send_email_x", &[0, 1, 3, 6, 8]),
            ("", &[1, 3, 4, 6]),
            ("a/b", &[1, 4, 6]),
        ];
        for _ in 0..2 {
            for (tool, want) in cases {
                let got: Vec<usize> = index.candidates(tool).collect();
                assert_eq!(got, *want, "{tool:?}");
                assert_eq!(got, walk(&items, tool), "{tool:?}");
            }
        }
    }

    #[test]
    fn exact_names_alone_need_no_memo() {
        let items = globs(&[Some("a"), None, Some("b"), Some("a")]);
        let index = ToolIndex::new(items.iter().map(Option::as_ref));
        assert_eq!(index.candidates("a").collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(index.candidates("c").collect::<Vec<_>>(), [1]);
        assert!(index.memo.borrow().lists.is_empty());
    }

    #[test]
    fn the_memo_is_bounded() {
        let items = globs(&[Some("t*"), Some("t1")]);
        let limits = MemoLimits {
            tools: 3,
            bytes: 1 << 20,
        };
        let index = ToolIndex::with_limits(items.iter().map(Option::as_ref), limits);
        for i in 0..100 {
            let tool = format!("t{i}");
            let want: &[usize] = if i == 1 { &[0, 1] } else { &[0] };
            assert_eq!(index.candidates(&tool).collect::<Vec<_>>(), want);
        }
        assert_eq!(index.memo.borrow().lists.len(), 3);
        // Past the bound, names already remembered are still served from it.
        assert!(index.memo.borrow().lists.contains_key("t0"));

        let tiny = MemoLimits {
            tools: 100,
            bytes: 100,
        };
        let index = ToolIndex::with_limits(items.iter().map(Option::as_ref), tiny);
        let long = "t".repeat(200);
        assert_eq!(index.candidates(&long).collect::<Vec<_>>(), [0]);
        assert!(index.memo.borrow().lists.is_empty());
    }

    #[test]
    fn literal_prefixes() {
        let cases: &[(&str, &str)] = &[
            ("send_*", "send_"),
            ("*_email", ""),
            ("!send_*", ""),
            ("a!b*", "a!b"),
            ("stripe.{a,b}", "stripe."),
            ("x\\*", "x"),
            ("ab[cd]", "ab"),
            ("a/b*", "a"),
            ("ab?", "ab"),
        ];
        for (pattern, want) in cases {
            assert_eq!(literal_prefix(pattern), want.as_bytes(), "{pattern:?}");
        }
    }

    /// Glob text from characters that mean something to glob-match, and
    /// plain ones; what `Glob::compile` refuses is left out.
    fn glob_text() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'b', '_', '.', '/', '*', '?', '!', '[', ']', '{', '}', ',', '\\', '-', '^',
        ]);
        prop::collection::vec(chars, 1..7)
            .prop_map(|chars| chars.into_iter().collect::<String>())
            .prop_filter("Glob::compile accepts it", |text| {
                Glob::compile(text).is_ok()
            })
    }

    fn tool_name() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec!['a', 'b', '_', '.', '/', '!', '*', '-']);
        prop::collection::vec(chars, 0..5).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        /// The index selects exactly what testing every item's glob selects,
        /// in the same order, whether the memo remembers the name or not.
        #[test]
        fn selects_what_a_walk_selects(
            texts in prop::collection::vec(prop::option::weighted(0.85, glob_text()), 0..16),
            tools in prop::collection::vec(tool_name(), 1..12),
            memo_tools in 0usize..4,
        ) {
            let items: Vec<Option<Glob>> = texts
                .iter()
                .map(|t| t.as_deref().map(|t| Glob::compile(t).unwrap()))
                .collect();
            let limits = MemoLimits { tools: memo_tools, bytes: 1 << 20 };
            let index = ToolIndex::with_limits(items.iter().map(Option::as_ref), limits);
            // The globs' own text as names too: exact names then match.
            let names = tools.iter().map(String::as_str).chain(texts.iter().flatten().map(String::as_str));
            for tool in names.clone().chain(names) {
                let got: Vec<usize> = index.candidates(tool).collect();
                prop_assert_eq!(got, walk(&items, tool), "tool {:?}", tool);
            }
        }
    }
}
