pub mod convert;
pub mod dump;
pub mod inspect;
pub mod run;
pub mod tokenize;
