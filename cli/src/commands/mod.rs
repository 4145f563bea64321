pub mod convert;
pub mod inspect;
pub mod run;
pub mod tokenize;
